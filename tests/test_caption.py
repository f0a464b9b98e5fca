"""The caption pipeline on the toy checkpoints: decoding controls, candidates, re-ranking, batches, fp16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pipelines
import toyworld
from pipelines import fusion
from pipelines.caption.base import generate_kwargs
from pipelines.caption.options import Candidate
from pipelines.caption.rerank import caption_and_rerank, rerank
from pipelines.core import limits
from pipelines.fast import blip_attention
from pipelines.fast.blip_attention import use_sdpa


@pytest.fixture(autouse=True)
def every_scene_in_one_call(monkeypatch):
    """These checks send all the held-out scenes in one call, as an offline script may: with the per-request
    count limit (which the pipelines enforce) raised, as such a script would raise it."""
    monkeypatch.setenv(limits.IMAGES_ENV, "1000")


MODELS = ["toy-blip", "toy-vit-gpt2"]
COLORS = list(toyworld.COLORS)


def names_the_scene(text: str, scene: toyworld.Scene) -> bool:
    return scene.color in text.split() and scene.shape in text.split()


def accuracy(hits) -> float:
    hits = list(hits)
    return sum(hits) / len(hits)


@pytest.mark.parametrize("model", MODELS)
def test_the_tab_path_names_colour_and_shape_on_fresh_scenes(model, fresh_scenes):
    """Three beam candidates each, re-ranked with the tab's default CLIP weight: the best one is right."""
    ranked = caption_and_rerank(
        pipelines.load("caption", model),
        [s.image for s in fresh_scenes],
        fusion.shared_space(),
        0.3,
        num_candidates=3,
        num_beams=4,
    )
    assert accuracy(names_the_scene(r[0].text, s) for r, s in zip(ranked, fresh_scenes)) >= 0.9


@pytest.mark.parametrize("model", MODELS)
def test_sampled_captions_name_colour_and_shape(model, fresh_scenes):
    captions = pipelines.load("caption", model)(
        [s.image for s in fresh_scenes], sample=True, top_p=0.9, temperature=0.7, seed=7
    )
    assert accuracy(names_the_scene(c.text, s) for c, s in zip(captions, fresh_scenes)) >= 0.9


@pytest.mark.parametrize("model", MODELS)
def test_sampling_with_a_seed_is_reproducible_and_the_seed_matters(model, fresh_scenes):
    captioner = pipelines.load("caption", model)
    images = [s.image for s in fresh_scenes[:8]]

    def draw(seed):
        return [
            c.candidates
            for c in captioner(images, sample=True, num_candidates=5, temperature=2.0, top_p=1.0, seed=seed)
        ]

    first = draw(11)
    torch.rand(3)  # whatever else uses the global generator in between does not matter
    assert draw(11) == first
    assert draw(12) != first
    assert draw(None) != draw(None)  # no seed: every call draws afresh


@pytest.mark.parametrize("model", MODELS)
def test_beam_candidates_are_distinct_best_first_and_scored_like_given_captions(model, fresh_scenes):
    captioner = pipelines.load("caption", model)
    images = [s.image for s in fresh_scenes[:4]]
    captions = captioner(images, num_candidates=3, num_beams=4)
    for caption in captions:
        texts, scores = [c.text for c in caption.candidates], [c.score for c in caption.candidates]
        assert len(set(texts)) == len(texts) == 3
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    # the score of a generated caption is the score the captioner gives that text when asked directly
    rescored = captioner.score(images, [[c.text for c in caption.candidates] for caption in captions])
    for caption, again in zip(captions, rescored):
        assert np.allclose([c.score for c in caption.candidates], again, atol=1e-3)


def _wrong_colour(scene: toyworld.Scene) -> str:
    return COLORS[(COLORS.index(scene.color) + 1) % len(COLORS)]


@pytest.mark.parametrize("model", MODELS)
def test_reranking_puts_the_right_colour_first_when_the_captioner_alone_does_not(model, fresh_scenes):
    """A fluent caption with the wrong colour against a bare label with the right one ("blue circle").

    Both are scored by the real models. The captioner's likelihood prefers its own style, so it ranks the wrong
    colour first; CLIP matches the label to the picture, and re-ranking with a CLIP weight above 0.5 fixes the order.
    """
    captioner, space = pipelines.load("caption", model), fusion.shared_space()
    scenes = fresh_scenes[:12]
    lists = [[toyworld.caption_for(_wrong_colour(s), s.shape), f"{s.color} {s.shape}"] for s in scenes]
    scores = captioner.score([s.image for s in scenes], lists)
    captioner_wrong = [i for i, pair in enumerate(scores) if pair[0] > pair[1]]
    assert len(captioner_wrong) >= 8, "the premise: the captioner alone ranks the wrong colour first"
    embeddings = space.embed_images([scenes[i].image for i in captioner_wrong])
    for i, embedding in zip(captioner_wrong, embeddings):
        candidates = [Candidate(text, score) for text, score in zip(lists[i], scores[i])]
        assert rerank(candidates, embedding, space, weight=0.0)[0].text == lists[i][0]
        best = rerank(candidates, embedding, space, weight=0.7)[0]
        assert scenes[i].color in best.text.split(), (lists[i], scores[i])


def test_rerank_reuses_a_precomputed_image_embedding(fresh_scenes):
    """What the Studio tab does: the image was embedded once already; re-ranking embeds only the captions."""
    captioner, space = pipelines.load("caption", "toy-blip"), fusion.shared_space()
    scene = fresh_scenes[0]
    [embedding] = space.embed_images([scene.image])
    [caption] = captioner([scene.image], num_candidates=3)
    image_passes = space.calls["image"]
    ranked = rerank(caption.candidates, embedding, space, weight=0.3)
    assert space.calls["image"] == image_passes
    assert sorted(r.text for r in ranked) == sorted(c.text for c in caption.candidates)
    assert [r.fused for r in ranked] == sorted((r.fused for r in ranked), reverse=True)
    assert all(-1 <= r.similarity <= 1 and 0 <= r.fused <= 1 for r in ranked)


def test_batch_is_one_generate_per_batch_in_input_order_with_progress(fresh_scenes):
    captioner, space = pipelines.load("caption", "toy-blip"), fusion.shared_space()
    scenes = fresh_scenes[:20]  # more than one batch of 16
    decoder = captioner.model.text_decoder
    calls, generate = [], decoder.generate

    def counting_generate(**inputs):  # the real generate, counted: one call decodes the whole batch
        calls.append(len(inputs["input_ids"]))
        return generate(**inputs)

    done = []
    decoder.generate = counting_generate
    try:
        ranked = caption_and_rerank(
            captioner, [s.image for s in scenes], space, 0.3, progress=done.append, num_candidates=2
        )
    finally:
        del decoder.generate
    assert calls == [16, 4]
    assert done == [16 / 20, 1.0]
    assert len(ranked) == len(scenes)
    assert accuracy(names_the_scene(r[0].text, s) for r, s in zip(ranked, scenes)) >= 0.9


@pytest.mark.parametrize("model,expected", [("toy-blip", (3, 30)), ("toy-vit-gpt2", (4, 15))])
def test_each_family_has_its_own_defaults(model, expected):
    options = pipelines.load("caption", model).options()
    assert (options.num_beams, options.max_new_tokens) == expected
    assert pipelines.load("caption", model).options(sample=True).num_beams is None


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(num_candidates=0), "candidate captions must be a whole number from 1 to 10; got 0"),
        (dict(num_candidates=11), "from 1 to 10; got 11"),
        (dict(max_new_tokens=0), "maximum caption length (new tokens) must be a whole number from 1 to 100; got 0"),
        (dict(min_new_tokens=12, max_new_tokens=5), "minimum length (12 new tokens) is more than the maximum (5)"),
        (dict(num_candidates=4, num_beams=2), "4 candidates need at least 4 beams (got 2)"),
        (dict(sample=True, num_beams=3), "Sampling draws each candidate on its own and uses no beams"),
        (dict(sample=True, temperature=0), "temperature must be a number more than 0"),
        (dict(sample=True, top_p=1.5), "top-p must be a number more than 0 up to 1"),
        (dict(repetition_penalty=0.5), "repetition penalty must be a number from 1"),
        (dict(num_beams=2.5), "number of beams must be a whole number"),
        (dict(beams=3), "Unknown option(s) beams"),
    ],
)
def test_bad_options_are_refused_with_what_to_do(overrides, message, fresh_scenes):
    with pytest.raises(pipelines.InputError) as info:
        pipelines.load("caption", "toy-blip")([fresh_scenes[0].image], **overrides)
    assert message in str(info.value)


def test_only_blip_continues_a_prefix(fresh_scenes):
    scene = fresh_scenes[1]
    [caption] = pipelines.load("caption", "toy-blip")([scene.image], prefix="a picture of", num_candidates=2)
    assert all(c.text.startswith("a picture of") for c in caption.candidates)
    assert names_the_scene(caption.text, scene)
    with pytest.raises(pipelines.InputError, match="cannot continue a text prefix"):
        pipelines.load("caption", "toy-vit-gpt2")([scene.image], prefix="a picture of")


@pytest.mark.equivalence
def test_sdpa_attention_gives_the_stock_results(fresh_scenes):
    from transformers import BlipForConditionalGeneration

    captioner = pipelines.load("caption", "toy-blip")
    stock = BlipForConditionalGeneration.from_pretrained("assets/models/toy/blip-caption").eval()
    fused = BlipForConditionalGeneration.from_pretrained("assets/models/toy/blip-caption").eval()
    assert use_sdpa(fused) == 2 * 2 + 2  # the toy has 2 vision layers, 2 text layers with self and cross attention
    inputs = captioner.preprocess([s.image for s in fresh_scenes[:6]], captioner.options())
    with torch.inference_mode():
        images = [m.vision_model(pixel_values=inputs["pixel_values"])[0] for m in (stock, fused)]
        ids = torch.full((6, 4), 9)
        logits = [m.text_decoder(input_ids=ids, encoder_hidden_states=images[0]).logits for m in (stock, fused)]
        sequences = [m.generate(**inputs, num_beams=3, max_new_tokens=10) for m in (stock, fused)]
    assert torch.allclose(*images, atol=1e-4) and torch.allclose(*logits, atol=1e-4)
    assert torch.equal(*sequences)


@pytest.mark.equivalence
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_weight_first_products_equal_the_linear_layers(dtype):
    from pipelines.fast.blip_attention import SKINNY_ROWS, use_skinny_linear

    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 16, bias=False)).to(dtype)
    inputs = [torch.randn(2, 5, 32, dtype=dtype), torch.randn(SKINNY_ROWS + 1, 32, dtype=dtype)]  # few, many rows
    with torch.inference_mode():
        expected = [layers(x) for x in inputs]
        assert use_skinny_linear(layers) == 2
        for x, stock in zip(inputs, expected):
            ours = layers(x)
            assert ours.shape == stock.shape and ours.is_contiguous()
            assert torch.allclose(ours.float(), stock.float(), atol=1e-5 if dtype == torch.float32 else 1e-2)


@pytest.mark.equivalence
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_our_blip_decoding_gives_the_tokens_of_the_stock_model(dtype, fresh_scenes):
    # vision in chunks, image keys and values once per image, weight-first products for few rows (and SDPA, in fp32):
    # the stock transformers model must generate the same tokens
    from transformers import BlipForConditionalGeneration

    from pipelines.fast.blip_attention import SKINNY_ROWS
    from pipelines.fast.blip_generate import CPU_VISION_CHUNK

    captioner = pipelines.load("caption", "toy-blip", dtype=dtype)
    stock = BlipForConditionalGeneration.from_pretrained("assets/models/toy/blip-caption", dtype=captioner.dtype).eval()
    if dtype == "float16":
        use_sdpa(stock)  # fp16 rounds eager and fused attention differently enough to swap near-tied beams
    linears = [m for m in captioner.model.text_decoder.modules() if type(m) is torch.nn.Linear]
    assert linears and all("forward" in vars(m) for m in linears)  # the decoder's layers are switched
    images = [s.image for s in fresh_scenes[: CPU_VISION_CHUNK + 2]]  # more than one vision chunk
    for options in (dict(num_beams=1), dict(num_beams=3, num_candidates=3)):
        options = captioner.options(**options)
        inputs = captioner.preprocess(images, options)
        with torch.inference_mode():
            ours = captioner._forward(inputs, options)
            expected = stock.generate(
                **inputs, **generate_kwargs(options), output_logits=True, return_dict_in_generate=True
            )
        assert len(images) * options.num_beams <= SKINNY_ROWS  # the decoding steps take the weight-first path
        assert torch.equal(ours.sequences, expected.sequences)
        tolerance = 1e-4 if dtype == "float32" else 2e-2
        assert all(torch.allclose(a.float(), b.float(), atol=tolerance) for a, b in zip(ours.logits, expected.logits))


@pytest.mark.parametrize("model", MODELS)
def test_fp16_candidates_and_sampling_match_fp32(model, fresh_scenes):
    images = [s.image for s in fresh_scenes[:10]]
    half = pipelines.load("caption", model, dtype="float16")
    assert next(half.model.parameters()).dtype == torch.float16
    for options in (dict(num_candidates=3, num_beams=4), dict(sample=True, temperature=0.7, seed=5)):
        full = pipelines.load("caption", model, dtype="float32")(images, **options)
        halves = half(images, **options)
        assert accuracy(h.text == f.text for h, f in zip(halves, full)) >= 0.9
        assert all(np.isfinite(c.score) for h in halves for c in h.candidates)


@pytest.mark.equivalence
@pytest.mark.parametrize(("dtype", "absorb"), [("float32", False), ("float32", True), ("float16", False)])
@pytest.mark.parametrize(
    "options",
    [
        dict(num_beams=4, num_candidates=3, repetition_penalty=1.3),
        dict(sample=True, num_candidates=4, temperature=2.0, seed=3),
        dict(prefix="a picture of", num_beams=3, num_candidates=2),
    ],
)
def test_each_image_handled_once_gives_the_stock_tokens(options, dtype, absorb, fresh_scenes):
    # ours: each image's keys and values projected once and read once per step by all its beams or samples, or
    # (absorb, on CPU in fp32 only) no keys or values projected: the rows attend to the image states themselves
    from pipelines.caption.base import _sampling, generate_kwargs
    from pipelines.fast import blip_generate

    captioner = pipelines.load("caption", "toy-blip", dtype=dtype)
    options = captioner.options(**options)
    inputs = captioner.preprocess([s.image for s in fresh_scenes[:5]], options)
    copies = options.num_candidates if options.sample else options.num_beams
    rows = []
    key = captioner.model.text_decoder.bert.encoder.layer[0].crossattention.self.key
    hook = key.register_forward_hook(lambda module, args, output: rows.append(args[0].shape[0]))
    outputs = []
    try:
        with torch.inference_mode():
            for run in (
                lambda **kw: captioner.model.generate(**inputs, **kw),
                lambda **kw: blip_generate.generate(captioner.model, **inputs, absorb=absorb, **kw),
            ):
                with _sampling(options, captioner.device):
                    outputs.append(run(**generate_kwargs(options), output_logits=True, return_dict_in_generate=True))
    finally:
        hook.remove()
    stock, ours = outputs
    assert torch.equal(stock.sequences, ours.sequences)
    tolerance = 1e-5 if dtype == "float32" else 1e-2
    assert all(torch.allclose(a.float(), b.float(), atol=tolerance) for a, b in zip(stock.logits, ours.logits))
    # stock: once per beam or sample; ours: once per image, or never
    assert rows == [5 * copies] + ([] if absorb else [5])


@pytest.mark.equivalence
@pytest.mark.parametrize("options", [dict(num_beams=1, max_new_tokens=4), dict(num_beams=4, max_new_tokens=20)])
def test_blip_generate_absorbs_when_that_takes_fewer_multiplications(options, fresh_scenes):
    # the cost rule picks the path that FlopCounterMode finds cheaper, on a case that favours each one
    from torch.utils.flop_counter import FlopCounterMode

    from pipelines.fast import blip_generate

    captioner = pipelines.load("caption", "toy-blip")
    options = captioner.options(**options, min_new_tokens=options["max_new_tokens"])  # every step runs
    inputs = captioner.preprocess([s.image for s in fresh_scenes[:2]], options)
    flops = {}
    with torch.inference_mode():
        images = blip_generate.encode_images(captioner.model, inputs["pixel_values"])
        for absorb in (False, True, None):  # None: generate's own choice
            with FlopCounterMode(display=False) as counter:
                blip_generate.generate(captioner.model, **inputs, absorb=absorb, **generate_kwargs(options))
            flops[absorb] = counter.get_total_flops()
    queries = options.num_beams * (options.max_new_tokens + 1)  # rows x (start token + new tokens)
    heads = captioner.model.config.text_config.num_attention_heads
    pays = blip_attention.absorbed_attention_pays(queries, images, heads)
    assert pays == (flops[True] < flops[False])
    assert flops[None] == min(flops[True], flops[False])  # generate counts its rows and tokens as the rule expects
    assert pays == (options.num_beams == 1)
    assert not blip_attention.absorbed_attention_pays(queries, images.half(), heads)  # fp16: what a GPU runs


@pytest.mark.equivalence
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "options",
    [
        dict(num_beams=1),
        dict(num_beams=6, num_candidates=6, max_new_tokens=12),  # enough beams that some end before the longest
        dict(sample=True, num_candidates=3, seed=3, temperature=2.0),
    ],
)
def test_token_log_probs_are_transformers_transition_scores(model, options, fresh_scenes):
    # our per-step log-sum-exp gives the numbers of transformers' normalised transition scores (which it computes
    # over every step's whole vocabulary at once), beams traced back, ended beams at 0
    from pipelines.caption.base import token_log_probs

    captioner = pipelines.load("caption", model)
    options = captioner.options(**options)
    inputs = captioner.preprocess([s.image for s in fresh_scenes[:4]], options)
    with torch.inference_mode():
        outputs = captioner._forward(inputs, options)
    beams = getattr(outputs, "beam_indices", None)
    decoder = captioner.model.text_decoder if model == "toy-blip" else captioner.model
    expected = decoder.compute_transition_scores(outputs.sequences, outputs.logits, beams, normalize_logits=True)
    ours = token_log_probs(outputs.sequences, outputs.logits, beams)
    assert ours.shape == expected.shape
    assert torch.allclose(ours, expected, atol=1e-5)
    if beams is not None:  # the case has beams that ended before the longest one, whose later steps count 0
        assert (beams < 0).any() and (ours[beams[:, : ours.shape[1]] < 0] == 0).all()
