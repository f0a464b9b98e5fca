"""Caption with a chat model (the caption family "smolvlm"): the toy SmolVLM (assets/models/toy/smolvlm-chat)
describes held-out scenes in a sentence through pipelines.load("caption"), with candidates from beams or sampling
that the CLIP re-rank orders; the Hub-shaped SmolVLM2 repos caption too; the Caption tab and /caption offer them."""

from __future__ import annotations

import shutil

import pytest
import torch
from gradio_client import handle_file

import pipelines
import toyworld
from pipelines import fusion
from pipelines.caption.rerank import caption_and_rerank
from pipelines.core import limits, registry, runtime
from pipelines.core.errors import InputError
from tests.conftest import models_put_back
from tests.hublike import hub_fixture, write_repo
from tests.hublike import repos as hub_repos

TOY = "toy-smolvlm"
SEED = toyworld.HELD_OUT_SEED + 7300  # held-out scenes: no training or metric seed comes near
HUB_NAMES = ["smolvlm2-256m", "smolvlm2-500m", "smolvlm2-2.2b"]


@pytest.fixture(autouse=True)
def every_scene_in_one_call(monkeypatch):
    monkeypatch.setenv(limits.IMAGES_ENV, "1000")


@pytest.fixture(scope="module")
def scenes() -> list[toyworld.Scene]:
    return toyworld.scenes(20, start_seed=SEED)


@pytest.fixture(scope="module")
def captioner():
    return pipelines.load("caption", TOY)


def names_the_scene(text: str, scene: toyworld.Scene) -> bool:
    words = text.rstrip(".").split()
    return scene.color in words and scene.shape in words


def accuracy(hits) -> float:
    hits = list(hits)
    return sum(hits) / len(hits)


def test_three_candidates_reranked_by_clip_name_colour_and_shape(captioner, scenes):
    """The Caption tab's path: three beam candidates per image, re-ranked with the toy CLIP at the tab's weight."""
    ranked = caption_and_rerank(captioner, [s.image for s in scenes], fusion.shared_space(), 0.3, num_candidates=3)
    assert all(len(rows) == 3 and len({r.text for r in rows}) == 3 for rows in ranked)
    assert accuracy(names_the_scene(rows[0].text, s) for rows, s in zip(ranked, scenes)) >= 0.9
    assert all(rows[0].text.startswith("The image shows") and rows[0].text.endswith(".") for rows in ranked)


def test_beam_candidates_are_best_first_and_scored_like_given_captions(captioner, scenes):
    captions = captioner([s.image for s in scenes[:4]], num_candidates=3)
    for caption in captions:
        scores = [c.score for c in caption.candidates]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    given = captioner.score([s.image for s in scenes[:4]], [[c.text for c in cap.candidates] for cap in captions])
    for caption, rescored in zip(captions, given):
        assert rescored == pytest.approx([c.score for c in caption.candidates], abs=1e-3)
    # a wrong colour reads as less likely than the right one
    best, colour = captions[0].text, scenes[0].color
    wrong_colour = best.replace(colour, "orange" if colour != "orange" else "red")
    [[right, wrong]] = captioner.score([scenes[0].image], [[best, wrong_colour]])
    assert right > wrong


def test_sampled_candidates_name_colour_and_shape_and_a_seed_reproduces_them(captioner, scenes):
    images = [s.image for s in scenes[:10]]
    first = captioner(images, sample=True, temperature=0.7, num_candidates=2, seed=3)
    assert accuracy(names_the_scene(c.text, s) for c, s in zip(first, scenes)) >= 0.9
    assert captioner(images, sample=True, temperature=0.7, num_candidates=2, seed=3) == first


def test_a_batch_captions_each_image_as_it_would_alone(captioner, scenes):
    images = [s.image for s in scenes[:3]] + [toyworld.scene(SEED + 500, size=200).image]  # another size too
    together = captioner(images, num_candidates=2)
    alone = [captioner([image], num_candidates=2)[0] for image in images]
    assert [c.text for c in together] == [c.text for c in alone]
    for a, b in zip(together, alone):
        assert [c.score for c in a.candidates] == pytest.approx([c.score for c in b.candidates], abs=1e-4)


def test_the_prompt_comes_from_the_registry(captioner):
    assert captioner.prompt == registry.family("caption", "smolvlm")["defaults"]["prompt"]
    assert captioner.prompt == "Describe this image in one sentence."


def test_a_prefix_is_refused_with_what_to_do(captioner, scenes):
    with pytest.raises(InputError, match="cannot continue a text prefix; clear the prefix"):
        captioner([scenes[0].image], prefix="a photo of")
    assert names_the_scene(captioner([scenes[0].image])[0].text, scenes[0])  # the next request works


def test_half_precision_on_the_cpu_describes_the_scene(scenes):
    with models_put_back():
        half = pipelines.load("caption", TOY, dtype=torch.float16)
        assert half.model.dtype == torch.float16
        captions = half([s.image for s in scenes[:10]], num_candidates=3)
    assert accuracy(names_the_scene(c.text, s) for c, s in zip(captions, scenes)) >= 0.9


def test_a_typed_directory_of_a_smolvlm_checkpoint_captions_with_this_family(scenes, tmp_path):
    directory = str(tmp_path / "smolvlm")  # a copy: the toy's own directory loads as its registry entry
    shutil.copytree(registry.PROJECT_ROOT / registry.resolve("caption", TOY, "toy").source, directory)
    assert registry.family_of_model_type("caption", "smolvlm") == "smolvlm"
    with models_put_back():
        typed = pipelines.load("caption", directory)
        assert type(typed).__name__ == "SmolVlmCaptioner" and typed.spec.backend == "smolvlm"
        [caption] = typed([scenes[0].image])
    assert names_the_scene(caption.text, scenes[0])


def test_the_caption_tab_lists_the_chat_models():
    from demos.common import model_choice

    choices = [value for _, value in model_choice("caption").choices]
    assert {TOY, *HUB_NAMES} <= set(choices)


@pytest.mark.slow
def test_caption_api_with_the_toy_smolvlm(client, scenes, tmp_path):
    scene = scenes[5]
    path = tmp_path / "scene.png"
    scene.image.save(path)
    best, table = client.predict(handle_file(str(path)), model=TOY, api_name="/caption")
    assert names_the_scene(best, scene) and best.startswith("The image shows")
    assert table["data"][0][0] == best and len(table["data"]) == 3


hub = hub_fixture(scope="module")


@pytest.mark.slow
@pytest.mark.parametrize("name", HUB_NAMES)
def test_every_smolvlm2_entry_captions_from_the_hub(hub, tmp_path, name):
    """The Hub-shaped repos (tests/hublike/repos.py: real token ids, processor files and template; random weights at
    shrunk sizes) load through the caption family and give candidates of at most the asked length."""
    spec = registry.resolve("caption", name, "default")
    write_repo(hub.root, spec.source, hub_repos.repo_files(spec.source))
    with pytest.MonkeyPatch.context() as patch, models_put_back():
        patch.setattr(runtime, "_settings", runtime.settings())
        runtime.configure(profile="default", device="cpu", cache_dir=tmp_path / "cache", models_dir=tmp_path / "models")
        captioner = pipelines.load("caption", name)
        assert captioner.spec.name == name and type(captioner).__name__ == "SmolVlmCaptioner"
        assert ("caption", name) not in pipelines.fallbacks
        image = toyworld.scene(81, size=600).image
        images = [image, toyworld.scene(82, size=300).image]
        captions = captioner(images, num_candidates=2, num_beams=2, max_new_tokens=4)
        [greedy] = captioner([image], num_beams=1, max_new_tokens=4)
        stock = stock_caption(captioner, image, 4)
    assert all(c.candidates and all(-1e9 < x.score <= 0 for x in c.candidates) for c in captions)
    assert greedy.text == stock  # what transformers' own generate answers to the prompt


def stock_caption(captioner, image, max_new_tokens: int) -> str:
    """The greedy answer to the captioner's prompt about ``image``, as a transformers user would get it."""
    content = [{"type": "image", "image": image}, {"type": "text", "text": captioner.prompt}]
    turn = [{"role": "user", "content": content}]
    inputs = captioner.processor.apply_chat_template(
        turn,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"do_image_splitting": False},
    )
    with torch.inference_mode():
        out = captioner.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    answer = captioner.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return " ".join(answer.split())
