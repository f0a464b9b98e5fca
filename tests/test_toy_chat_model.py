"""The toy chat model (assets/models/toy/smolvlm-chat, a tiny SmolVLM trained by scripts/train_toy.py) answers like
a chat model should, loaded the way transformers users load SmolVLM2: AutoProcessor + AutoModelForImageTextToText,
a chat message with an image, greedy generate. And the Hub-shaped SmolVLM2 repos (tests/hublike/repos.py) load
the same way, from a snapshot the project's loader takes, which leaves their onnx/ folder on the Hub."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import toyworld
from pipelines.core import registry, runtime
from pipelines.core.checkpoints import TRANSFORMERS, checkpoint_dir
from pipelines.core.registry import ModelSpec
from tests.hublike import hub_fixture, write_repo
from tests.hublike import repos as R

sys.path.insert(0, str(registry.PROJECT_ROOT / "scripts"))
import train_toy  # noqa: E402  (the questions and the sentence the toy was trained on)

pytestmark = pytest.mark.slow

TOY = registry.PROJECT_ROOT / "assets/models/toy/smolvlm-chat"
SEED = toyworld.HELD_OUT_SEED + 9000  # held-out scenes no metric was taken on
SMOLVLM_HUB_IDS = [h for h in R.HUB_IDS if R.family(h) == "smolvlm"]


@pytest.fixture(scope="module")
def toy():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(TOY)
    model = AutoModelForImageTextToText.from_pretrained(TOY, dtype=torch.float32).eval()
    return processor, model


def chat(image, *texts: str) -> list[dict]:
    """A user message with the image and the first text; every other text alternates assistant / user."""
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": texts[0]}]}]
    for i, text in enumerate(texts[1:]):
        role = "assistant" if i % 2 == 0 else "user"
        messages.append({"role": role, "content": [{"type": "text", "text": text}]})
    return messages


@torch.no_grad()
def reply(toy, messages: list[dict], model=None) -> tuple[str, list[int]]:
    """The greedy answer to ``messages`` and its new token ids."""
    processor, fp32 = toy
    model = model or fp32
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    new = model.generate(**inputs, max_new_tokens=32, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    return processor.decode(new, skip_special_tokens=True).strip(), new.tolist()


def right(toy, cases: list[tuple[list[dict], str]], model=None) -> int:
    return sum(reply(toy, messages, model)[0] == expected for messages, expected in cases)


def single_scenes(count: int = 10) -> list:
    return toyworld.scenes(count, start_seed=SEED)


def two_shape_scenes(count: int = 10) -> list:
    return train_toy.fair_two_shape_scenes(count, start_seed=SEED)


# ---------------------------------------------------------------------------------------------------------------
# the toy


def test_toy_is_a_small_smolvlm_checkpoint_with_a_chat_template():
    names = {p.name for p in TOY.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    } <= names
    assert sum(p.stat().st_size for p in TOY.iterdir()) < 5_000_000


def test_toy_names_the_colour_and_shape_of_held_out_scenes(toy):
    scenes = single_scenes()
    colours = [(chat(s.image, "What color is the shape?"), s.color) for s in scenes]
    shapes = [(chat(s.image, "What shape is it?"), s.shape) for s in scenes]
    assert right(toy, colours) >= 9
    assert right(toy, shapes) >= 9


def test_toy_counts_the_shapes(toy):
    cases = [(chat(s.image, "How many shapes are there?"), "one") for s in single_scenes(5)]
    cases += [(chat(s.image, "How many shapes are there?"), "two") for s in two_shape_scenes(5)]
    assert right(toy, cases) >= 9


def test_toy_says_which_side_each_of_two_shapes_is_on(toy):
    cases = []
    for i, scene in enumerate(two_shape_scenes(5)):
        for shape in scene.shapes:  # both shapes of a scene: the answer must follow the shape asked about
            question = train_toy.SIDE_QUESTIONS[i % 2].format(c=shape.color, s=shape.shape)
            cases.append((chat(scene.image, question), train_toy.side_of(scene, shape)))
    assert {expected for _, expected in cases} == {"left", "right"}
    assert right(toy, cases) >= 9


def test_toy_describes_a_scene_in_a_sentence_and_stops_at_end_of_utterance(toy):
    processor, _ = toy
    scenes = single_scenes(5) + two_shape_scenes(5)
    answers = [reply(toy, chat(s.image, "Describe this image.")) for s in scenes]
    assert sum(text == train_toy.sentence_for(s) for (text, _), s in zip(answers, scenes)) >= 8
    text, ids = answers[0]
    assert text.startswith("The image shows") and text.endswith(".")
    assert ids[-1] == processor.tokenizer.convert_tokens_to_ids("<end_of_utterance>") and len(ids) < 32


def test_toy_answers_a_follow_up_question_in_the_same_chat(toy):
    cases = []
    for scene in single_scenes():
        first, _ = reply(toy, chat(scene.image, "What color is it?"))
        cases.append((chat(scene.image, "What color is it?", first, "What shape is it?"), scene.shape))
    assert right(toy, cases) >= 9
    follow = []
    for scene in two_shape_scenes(5):
        first, _ = reply(toy, chat(scene.image, "Describe this image."))
        follow.append((chat(scene.image, "Describe this image.", first, "How many shapes are there?"), "two"))
    assert right(toy, follow) >= 4


def test_toy_answers_the_same_in_fp16_on_the_cpu(toy):
    from transformers import AutoModelForImageTextToText

    half = AutoModelForImageTextToText.from_pretrained(TOY, dtype=torch.float16).eval()
    cases = [(chat(s.image, "What color is the shape?"), s.color) for s in single_scenes()]
    assert right(toy, cases, half) >= 9


# ---------------------------------------------------------------------------------------------------------------
# the Hub-shaped SmolVLM2 repos

hub = hub_fixture(scope="module")


def _image() -> Image.Image:
    pixels = np.full((48, 64, 3), 235, dtype=np.uint8)
    pixels[8:40, 16:48] = (220, 30, 30)  # a red square on grey
    return Image.fromarray(pixels)


@pytest.fixture
def app_cache(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "_settings", runtime.settings())
        runtime.configure(device="cpu", cache_dir=tmp_path / "app-cache", models_dir=tmp_path / "models")
        yield


@pytest.mark.parametrize("hub_id", SMOLVLM_HUB_IDS)
def test_smolvlm2_repo_loads_from_a_snapshot_and_chats(hub, app_cache, hub_id):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    files = R.repo_files(hub_id)
    write_repo(hub.root, hub_id, files)
    spec = ModelSpec(task="chat", name=hub_id, backend="smolvlm", source=hub_id)
    directory = checkpoint_dir(spec, TRANSFORMERS)
    got = {str(p.relative_to(directory)) for p in Path(directory).rglob("*") if p.is_file()}
    assert not any(name.startswith("onnx/") for name in got), f"the snapshot fetched the ONNX exports: {got}"
    assert "chat_template.json" in got and "processor_config.json" in got and "preprocessor_config.json" in got
    weights = {n for n in files if n.endswith((".safetensors", ".index.json"))}
    assert weights <= got

    processor = AutoProcessor.from_pretrained(directory)
    model, info = AutoModelForImageTextToText.from_pretrained(directory, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    vision = model.config.vision_config
    tokens_an_image = (vision.image_size // vision.patch_size) ** 2 // model.config.scale_factor**2
    assert processor.image_seq_len == tokens_an_image == R.smolvlm_image_seq_len(hub_id)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == 49280 and model.config.text_config.vocab_size == 49280
    assert tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_id == 49190
    assert tokenizer.convert_tokens_to_ids("<end_of_utterance>") == model.generation_config.eos_token_id == 49279

    messages = [
        {"role": "user", "content": [{"type": "image", "image": _image()}, {"type": "text", "text": "What is it?"}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>User:<image>What is it?") and prompt.endswith("Assistant:")
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    images = inputs["pixel_values"].shape[1]  # the global image and its tiles (the Hub repos split images)
    assert int((inputs["input_ids"] == 49190).sum()) == images * tokens_an_image
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_without_a_listing_the_loader_patterns_still_leave_onnx_on_the_hub():
    """Offline, the loader asks the cache for every file its layout could use: none of the ONNX exports."""
    import fnmatch

    files = R.repo_files("HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
    onnx = [n for n in files if n.startswith("onnx/")]
    assert onnx
    patterns = TRANSFORMERS.patterns()
    assert not [n for n in onnx if any(fnmatch.fnmatch(n, p) for p in patterns)]


def test_a_hub_snapshot_of_a_transformers_5_checkpoint_keeps_its_chat_template():
    """transformers 5 saves the template as chat_template.jinja: the files a snapshot takes are all the toy's."""
    listing = sorted(p.name for p in TOY.iterdir())
    assert "chat_template.jinja" in listing
    assert sorted(TRANSFORMERS.support_files(listing) + TRANSFORMERS.chosen_weights(listing)) == listing
