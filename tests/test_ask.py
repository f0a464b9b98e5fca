"""Ask pipelines (BLIP VQA and ViLT behind one interface) and the heat map, with the toy models on fresh scenes."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import pipelines
import toyworld
from pipelines import fusion
from pipelines.core import limits
from pipelines.core.registry import PROJECT_ROOT
from pipelines.search import heatmap
from pipelines.vqa.blip import BlipVqa
from pipelines.vqa.vilt import ViltVqa


@pytest.fixture(autouse=True)
def every_scene_in_one_call(monkeypatch):
    """These checks send all the held-out scenes in one call, as an offline script may: with the per-request
    count limit (which the pipelines enforce) raised, as such a script would raise it."""
    monkeypatch.setenv(limits.IMAGES_ENV, "1000")


FAMILIES = {"toy-blip-vqa": BlipVqa, "toy-vilt": ViltVqa}
QUESTIONS = [(q, "color") for q in toyworld.COLOR_QUESTIONS] + [(q, "shape") for q in toyworld.SHAPE_QUESTIONS]


def asked(scenes):
    """Every toy question wording about every scene, with the true answer."""
    return [((s.image, q), getattr(s, part)) for s in scenes for q, part in QUESTIONS]


def red_and_blue_scene(seed: int) -> toyworld.Scene:
    """A fresh scene with a red and a blue shape, in either order."""
    rng = np.random.default_rng(seed)
    shapes = [("red", str(rng.choice(toyworld.SHAPES))), ("blue", str(rng.choice(toyworld.SHAPES)))]
    return toyworld.render(shapes[::-1] if seed % 2 else shapes, rng)


@pytest.mark.parametrize("model", FAMILIES)
def test_colour_and_shape_questions_on_fresh_scenes(model, fresh_scenes):
    answerer = pipelines.load("ask", model)
    assert type(answerer) is FAMILIES[model]
    pairs, truth = zip(*asked(fresh_scenes))
    answers = answerer(list(pairs))
    assert sum(a.text == t for a, t in zip(answers, truth)) / len(truth) >= 0.9


def test_blip_ranks_its_beam_answers_with_probabilities_that_sum_to_one(fresh_scenes):
    answers = pipelines.load("ask", "toy-blip-vqa")(
        [(s.image, "what color is the shape?") for s in fresh_scenes[:8]], top_k=4
    )
    for answer, scene in zip(answers, fresh_scenes):
        probabilities = [p for _, p in answer.ranked]
        assert 1 < len(answer.ranked) <= 4 and len({t for t, _ in answer.ranked}) == len(answer.ranked)
        assert probabilities == sorted(probabilities, reverse=True) and math.isclose(sum(probabilities), 1.0)
        assert answer.text == scene.color and answer.score > 0.5


def test_vilt_ranks_its_answer_set_with_probabilities(fresh_scenes):
    scenes = fresh_scenes[:10]
    answers = pipelines.load("ask", "toy-vilt")([(s.image, "what shape is it?") for s in scenes], top_k=9)
    for answer in answers:
        assert sorted(t for t, _ in answer.ranked) == sorted([*toyworld.COLORS, *toyworld.SHAPES])
        probabilities = [p for _, p in answer.ranked]
        assert probabilities == sorted(probabilities, reverse=True) and all(0 <= p <= 1 for p in probabilities)
    assert sum(a.text == s.shape and a.score > 0.5 for a, s in zip(answers, scenes)) >= 8


def test_a_vilt_checkpoint_in_a_directory_picks_the_vilt_backend(tmp_path, fresh_scenes):
    shutil.copytree(PROJECT_ROOT / "assets/models/toy/vilt", tmp_path / "my-vilt")
    answerer = pipelines.load("ask", str(tmp_path / "my-vilt"))
    assert isinstance(answerer, ViltVqa)
    [answer] = answerer([(fresh_scenes[1].image, "what color is it?")])
    assert answer.text == fresh_scenes[1].color


@pytest.mark.equivalence
@pytest.mark.parametrize("model", FAMILIES)
def test_a_batch_of_mixed_sizes_answers_as_one_pair_at_a_time(model):
    # images of several sizes, and questions of several lengths: a short one is padded beside a long one, and its
    # answers must not read that padding (other visitors' questions share the batch)
    from demos import examples

    questions = ("what color is it?", "what is the shape of the thing in the middle of this picture?")
    pairs = [(path, q) for path in examples.photos()[:4] for q in questions]
    answerer = pipelines.load("ask", model)
    together = answerer(pairs)
    alone = [answerer([pair])[0] for pair in pairs]
    assert [a.text for a in together] == [a.text for a in alone]
    assert np.allclose([a.score for a in together], [a.score for a in alone], atol=1e-4)


@pytest.mark.equivalence
@pytest.mark.parametrize("model", FAMILIES)
def test_fused_attention_and_shared_images_answer_like_the_stock_model(model, fresh_scenes):
    # Two questions per image: BLIP (accelerated) reads each image once for both; ViLT runs the stock model.
    answerer = pipelines.load("ask", model)
    stock = type(answerer.model).from_pretrained(PROJECT_ROOT / answerer.spec.source).eval()
    pairs = [(s.image, q) for s in fresh_scenes[:3] for q in ("what color is the shape?", "what shape is it?")]
    answers = answerer(pairs, top_k=1)
    for (image, question), answer in zip(pairs, answers):
        inputs = answerer.processor(images=image, text=question, return_tensors="pt")
        with torch.inference_mode():
            if model == "toy-vilt":
                probabilities = stock(**inputs).logits[0].sigmoid()
                expected = stock.config.id2label[int(probabilities.argmax())]
                assert answer.score == pytest.approx(float(probabilities.max()), abs=1e-5)
            else:
                best = stock.generate(**inputs, num_beams=5, length_penalty=0.0, max_new_tokens=10)[0]
                expected = answerer.processor.decode(best, skip_special_tokens=True)
        assert answer.text == expected


@pytest.mark.equivalence
@pytest.mark.parametrize(("dtype", "absorb"), [("float32", False), ("float32", True), ("float16", False)])
def test_questions_sharing_an_image_read_it_together_like_the_stock_encoder(dtype, absorb, fresh_scenes):
    # its keys and values projected once, or (absorb, CPU fp32) none: the questions attend to the image states
    from pipelines.fast.blip_attention import ImageRows

    answerer = pipelines.load("ask", "toy-blip-vqa", dtype=dtype)
    stock = type(answerer.model).from_pretrained(PROJECT_ROOT / answerer.spec.source, dtype=answerer.dtype).eval()
    pairs = [(s.image, q) for s in fresh_scenes[:3] for q in ("what color is the shape?", "what is it?")]
    batch = answerer.preprocess(pairs, answerer.options())
    rows = ImageRows(batch.image_index, absorb=absorb)
    assert rows.grouped and not ImageRows(torch.tensor([0, 1, 0])).grouped
    encoder = dict(input_ids=batch.text["input_ids"], attention_mask=batch.text["attention_mask"], return_dict=False)
    projected = []  # rows through the first cross-attention's key projection
    key = answerer.model.text_encoder.encoder.layer[0].crossattention.self.key
    hook = key.register_forward_hook(lambda module, args, output: projected.append(args[0].shape[0]))
    try:
        with torch.inference_mode():
            images = answerer.model.vision_model(pixel_values=batch.pixels["pixel_values"])[0]
            ours = answerer.model.text_encoder(**encoder, encoder_hidden_states=images, past_key_values=rows)[0]
    finally:
        hook.remove()
    with torch.inference_mode():
        expected = stock.text_encoder(**encoder, encoder_hidden_states=images[batch.image_index])[0]
    assert torch.allclose(ours.float(), expected.float(), atol=1e-5 if dtype == "float32" else 1e-2)
    assert projected == ([] if absorb else [3])  # never, or once per image


@pytest.mark.parametrize("model", FAMILIES)
def test_fp16_answers_match_fp32(model, fresh_scenes):
    pairs = [pair for pair, _ in asked(fresh_scenes[:10])]
    full = pipelines.load("ask", model, dtype="float32")(pairs)
    half_pipeline = pipelines.load("ask", model, dtype="float16")
    assert next(half_pipeline.model.parameters()).dtype == torch.float16
    half = half_pipeline(pairs)
    assert sum(h.text == f.text for h, f in zip(half, full)) / len(full) >= 0.9


@pytest.mark.parametrize("model", FAMILIES)
def test_a_5000_character_question_is_cut_to_the_model_limit_and_answered(model, fresh_scenes):
    scene = fresh_scenes[2]
    question = "what color is the shape? " + "please look very carefully " * 185
    assert len(question) > 5000
    answerer = pipelines.load("ask", model)
    [answer] = answerer([(scene.image, question)])
    assert answer.truncated and answer.text == scene.color
    assert len(answerer.processor.tokenizer(answer.question)["input_ids"]) <= answerer.max_question_tokens
    [short] = answerer([(scene.image, "what color is the shape?")])
    assert not short.truncated


@pytest.mark.parametrize(
    "question,message",
    [
        ("", "The question is empty"),
        ("  \n\t ", "The question is empty"),
        ("какого цвета эта фигура?", "Cyrillic script"),
        ("这个形状是什么颜色", "CJK"),
        ("ما لون الشكل؟", "Arabic script"),
    ],
)
def test_unusable_questions_are_refused_with_a_reason(question, message, fresh_scenes):
    with pytest.raises(pipelines.InputError, match=message) as info:
        pipelines.load("ask")([(fresh_scenes[0].image, question)])
    assert "e.g. 'what color is the shape?'" in str(info.value)


def test_a_question_with_a_few_foreign_letters_is_still_answered(fresh_scenes):
    [answer] = pipelines.load("ask")([(fresh_scenes[3].image, "what color is the shape, café π?")])
    assert answer.text == fresh_scenes[3].color


@pytest.mark.parametrize(
    "image,message",
    [
        (None, "No image was given"),
        (Image.new("RGB", (1, 1), "red"), "1x1 pixels: too small"),
    ],
)
def test_missing_or_tiny_images_are_refused(image, message):
    with pytest.raises(pipelines.InputError, match=message):
        pipelines.load("ask")([(image, "what color is the shape?")])


def test_options_are_checked():
    with pytest.raises(pipelines.InputError, match="top_k must be a whole number from 1 to 10"):
        pipelines.load("ask")([], top_k=0)


# ------------------------------------------------------------------------------------- where the model looks


def box_heat(heat: heatmap.Heatmap, size: tuple[int, int], box) -> float:
    full = np.asarray(Image.fromarray(heat.heat, mode="F").resize(size, Image.Resampling.BILINEAR))
    left, top, right, bottom = box
    return float(full[top:bottom, left:right].mean())


@pytest.mark.parametrize("word,other", [("red", "blue"), ("blue", "red")])
def test_the_heatmap_is_hotter_over_the_shape_of_the_named_colour(word, other):
    space = fusion.shared_space()
    for seed in range(toyworld.HELD_OUT_SEED + 20_000, toyworld.HELD_OUT_SEED + 20_010):
        scene = red_and_blue_scene(seed)
        boxes = {s.color: s.box for s in scene.shapes}
        heat = heatmap.relevance_map(space, scene.image, word)
        assert box_heat(heat, scene.image.size, boxes[word]) > box_heat(heat, scene.image.size, boxes[other]), seed


def test_the_heatmap_scores_every_crop_in_one_batched_call():
    space = fusion.shared_space()
    before = space.calls["image"]
    heat = heatmap.relevance_map(space, red_and_blue_scene(toyworld.HELD_OUT_SEED + 20_100).image, "red")
    assert heat.crops == len(heatmap.crop_boxes((64, 64)))
    assert space.calls["image"] - before == math.ceil(heat.crops / fusion.BATCH_SIZE)
    assert heat.heat.min() == 0.0 and heat.heat.max() == 1.0 and heat.low < heat.high


def test_crops_cover_images_of_any_shape():
    for size in ((64, 64), (640, 200), (90, 500), (9, 9)):
        covered = np.zeros(size[::-1], bool)
        for left, top, right, bottom in heatmap.crop_boxes(size):
            assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
            covered[top:bottom, left:right] = True
        assert covered.all(), size


def test_the_overlay_is_shown_at_display_size_and_blends_by_opacity():
    scene = red_and_blue_scene(toyworld.HELD_OUT_SEED + 20_200)
    heat = heatmap.relevance_map(fusion.shared_space(), scene.image, "red")
    plain = heatmap.overlay(scene.image, heat, 0.0)
    assert plain.size == (heatmap.DISPLAY_SIDE, heatmap.DISPLAY_SIDE)  # a 64-pixel scene is not a postage stamp
    assert np.array_equal(np.asarray(plain), np.asarray(heatmap.display_size(scene.image)))
    full = np.asarray(heatmap.overlay(scene.image, heat, 1.0)).astype(int)
    scale = plain.width / scene.image.width
    left, top, right, bottom = (round(v * scale) for v in next(s.box for s in scene.shapes if s.color == "red"))
    hottest = np.unravel_index(full.sum(axis=2).argmax(), full.shape[:2])  # the brightest spot
    assert top <= hottest[0] <= bottom and left <= hottest[1] <= right
    assert full[hottest][0] > 200 and full[hottest][1] > 200  # the colour scale's high end is bright (yellow-white)
    assert full.sum(axis=2).min() < 150  # and its low end dark
    with pytest.raises(pipelines.InputError, match="Opacity must be between 0 and 1"):
        heatmap.overlay(scene.image, heat, 1.5)


def test_a_photo_s_overlay_keeps_its_shape_at_display_size_with_a_smooth_map():
    photo = Image.open(PROJECT_ROOT / "assets/examples/photos/cat.jpg")
    heat = heatmap.relevance_map(fusion.shared_space(), photo, "cat")
    shown = heatmap.overlay(photo, heat, 0.5)
    assert max(shown.size) == heatmap.DISPLAY_SIDE
    assert shown.width / shown.height == pytest.approx(photo.width / photo.height, rel=0.01)
    smooth = heatmap.upscaled(heat.heat, shown.size)
    assert smooth.min() == pytest.approx(0.0, abs=0.02) and smooth.max() == pytest.approx(1.0, abs=0.02)
    # No crop grid: neighbouring display pixels differ by a small step, not a block's edge.
    assert np.abs(np.diff(smooth, axis=0)).max() < 0.05 and np.abs(np.diff(smooth, axis=1)).max() < 0.05


def test_the_heatmap_needs_words():
    with pytest.raises(pipelines.InputError, match="Nothing to look for"):
        heatmap.relevance_map(fusion.shared_space(), toyworld.scene(toyworld.HELD_OUT_SEED).image, "  ")


@pytest.mark.parametrize("model", FAMILIES)
def test_requests_from_many_threads_at_once_each_get_their_questions_padded_and_cut(model):
    # A fast tokenizer keeps its padding and truncation settings on one shared object that every call rewrites, and
    # preprocess makes two calls (count unpadded, then pad and cut): concurrent requests must not interleave them.
    import threading

    answerer = pipelines.load("ask", model)
    options, limit = answerer.options(), answerer.max_question_tokens
    image = toyworld.scene(toyworld.HELD_OUT_SEED + 41_000, size=16).image
    long = "what color is " + "the " * limit + "shape"  # more tokens than the model reads
    failures = []

    def request(offset: int) -> None:
        try:
            for i in range(40):
                questions = ["what color is it?", "what shape is it?", long][(offset + i) % 3 :]
                batch = answerer.preprocess([(image, q) for q in questions], options)
                assert batch.text["input_ids"].shape[1] <= limit
                assert batch.truncated == [q == long for q in questions]
        except Exception as error:  # noqa: BLE001 - any failure in a thread fails the test below
            failures.append(error)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
