"""Every layout a checkpoint of a supported family may come in loads through our own loaders and gives the same
answers as the same weights in the standard layout; a .bin that is more than tensors is refused and runs nothing.

The layouts are made at test time from the toy checkpoints: the weights re-saved sharded, as PyTorch .bin, under
open_clip's other file names; the tokenizer rewritten as vocab.txt (WordPiece) or vocab.json + merges.txt (BPE).
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import pipelines
import toyworld
from pipelines.core import registry
from pipelines.core.checkpoints import read_weights
from pipelines.core.errors import ModelLoadError

pytestmark = pytest.mark.slow


TOY = registry.PROJECT_ROOT / "assets/models/toy"
CPU, FP32 = torch.device("cpu"), torch.float32


def load_uncached(task: str, path: Path):
    """The pipeline for the checkpoint at ``path``, through the project's loader, kept out of the process cache."""
    spec = registry.resolve(task, str(path), "toy")
    return pipelines.pipeline_class(spec).load(spec, CPU, FP32)


@pytest.fixture(scope="module")
def images():
    return [s.image for s in toyworld.scenes(4, start_seed=toyworld.HELD_OUT_SEED + 7000)]


def copy_without_weights(source: Path, target: Path, weights: str) -> dict[str, torch.Tensor]:
    """``source`` copied to ``target`` minus its ``weights`` file; returns those weights."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(weights))
    return load_file(str(source / weights))


def save_sharded(state: dict[str, torch.Tensor], target: Path, *, safetensors: bool) -> None:
    """``state`` in two shards plus the index transformers writes for them."""
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    prefix, suffix = ("model", "safetensors") if safetensors else ("pytorch_model", "bin")
    weight_map = {}
    for number, part in enumerate(halves, start=1):
        name = f"{prefix}-{number:05d}-of-00002.{suffix}"
        shard = {k: state[k].contiguous() for k in part}
        if safetensors:
            save_file(shard, str(target / name), metadata={"format": "pt"})
        else:
            torch.save(shard, target / name)
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (target / f"{prefix}.{suffix}.index.json").write_text(json.dumps(index))


def perturbed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Other weights of the same shapes: a model that read these would answer differently."""
    generator = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(v.shape, generator=generator).to(v.dtype) if v.is_floating_point() else v
        for k, v in state.items()
    }


def captions(captioner, images, **options) -> list[tuple]:
    return [
        tuple((c.text, c.score) for c in caption.candidates)
        for caption in captioner(images, num_candidates=2, **options)
    ]


def close(found, expected) -> bool:
    """Equal texts and ids, and numbers equal up to float rounding (the same weights, read from another layout, may
    sit at another memory alignment and take another vector code path)."""
    if isinstance(expected, float):
        return math.isclose(found, expected, rel_tol=1e-4, abs_tol=1e-5)
    if isinstance(expected, (list, tuple)):
        return len(found) == len(expected) and all(close(f, e) for f, e in zip(found, expected))
    return found == expected


# --- transformers checkpoints (model.safetensors, shards + index, pytorch_model.bin) -------------------------------


def make_transformers_layout(layout: str, source: Path, target: Path) -> None:
    state = copy_without_weights(source, target, "model.safetensors")
    if layout == "model.safetensors":
        save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    elif layout == "sharded safetensors":
        save_sharded(state, target, safetensors=True)
    elif layout == "pytorch_model.bin":
        torch.save(state, target / "pytorch_model.bin")
    elif layout == "sharded pytorch_model.bin":
        save_sharded(state, target, safetensors=False)
    elif layout == "bin beside safetensors":  # the .bin holds other weights: answers show which file was read
        save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
        torch.save(perturbed(state), target / "pytorch_model.bin")
    else:
        raise ValueError(layout)


TRANSFORMERS_LAYOUTS = [
    "model.safetensors",
    "sharded safetensors",
    "pytorch_model.bin",
    "sharded pytorch_model.bin",
    "bin beside safetensors",
]


@pytest.fixture(scope="module")
def toy_captions(images):
    return captions(load_uncached("caption", TOY / "blip-caption"), images)


@pytest.mark.parametrize("layout", TRANSFORMERS_LAYOUTS)
def test_blip_captions_the_same_in_every_weights_layout(layout, tmp_path, images, toy_captions):
    make_transformers_layout(layout, TOY / "blip-caption", tmp_path / "blip")
    assert close(captions(load_uncached("caption", tmp_path / "blip"), images), toy_captions)


def test_vilt_answers_the_same_from_pytorch_model_bin(tmp_path, images):
    make_transformers_layout("pytorch_model.bin", TOY / "vilt", tmp_path / "vilt")
    questions = [(image, "what color is the shape?") for image in images]
    expected = load_uncached("ask", TOY / "vilt")(questions)
    assert close([a.ranked for a in load_uncached("ask", tmp_path / "vilt")(questions)], [a.ranked for a in expected])


def test_a_missing_shard_is_named(tmp_path):
    make_transformers_layout("sharded safetensors", TOY / "blip-caption", tmp_path / "blip")
    (tmp_path / "blip/model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="lacks the weight shards model-00002-of-00002.safetensors"):
        load_uncached("caption", tmp_path / "blip")


def test_a_directory_without_weights_says_which_files_it_needs(tmp_path):
    copy_without_weights(TOY / "blip-caption", tmp_path / "blip", "model.safetensors")
    (tmp_path / "blip/tf_model.h5").write_bytes(b"\x89HDF")  # a format we never read
    expected = "holds no weights this model kind loads.*model.safetensors.*pytorch_model"
    with pytest.raises(ModelLoadError, match=expected):
        load_uncached("caption", tmp_path / "blip")


# --- tokenizer files (tokenizer.json, vocab.txt, vocab.json + merges.txt) ------------------------------------------


def wordpiece_as_vocab_txt(directory: Path) -> None:
    """Replace tokenizer.json by the vocab.txt a BERT tokenizer is built from (ids in line order)."""
    vocab = json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    (directory / "vocab.txt").write_text("".join(f"{token}\n" for token in tokens))
    (directory / "tokenizer.json").unlink()


def bpe_as_vocab_and_merges(directory: Path) -> None:
    """Replace tokenizer.json by GPT-2's vocab.json + merges.txt."""
    model = json.loads((directory / "tokenizer.json").read_text())["model"]
    (directory / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges))
    (directory / "tokenizer.json").unlink()


def test_blip_reads_a_vocab_txt_tokenizer(tmp_path, images, toy_captions):
    shutil.copytree(TOY / "blip-caption", tmp_path / "blip")
    wordpiece_as_vocab_txt(tmp_path / "blip")
    assert close(captions(load_uncached("caption", tmp_path / "blip"), images), toy_captions)


def test_vit_gpt2_reads_vocab_json_and_merges_txt(tmp_path, images):
    shutil.copytree(TOY / "vit-gpt2", tmp_path / "vit-gpt2")
    bpe_as_vocab_and_merges(tmp_path / "vit-gpt2")
    make_transformers_layout("pytorch_model.bin", tmp_path / "vit-gpt2", tmp_path / "vit-gpt2-bin")
    expected = captions(load_uncached("caption", TOY / "vit-gpt2"), images)
    assert close(captions(load_uncached("caption", tmp_path / "vit-gpt2-bin"), images), expected)


# --- open_clip checkpoints (three weight file names; a .bin beside a safetensors) ----------------------------------


def make_open_clip_layout(layout: str, target: Path) -> None:
    state = copy_without_weights(TOY / "clip", target, "open_clip_model.safetensors")
    if layout in ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors"):
        save_file(state, str(target / layout))
    elif layout == "open_clip_pytorch_model.bin":
        torch.save(state, target / layout)
    elif layout == "bin beside safetensors":
        save_file(state, str(target / "open_clip_pytorch_model.safetensors"))
        torch.save(perturbed(state), target / "open_clip_pytorch_model.bin")
    elif layout == "bin beside a transformers model.safetensors":  # laion repos carry both formats
        torch.save(state, target / "open_clip_pytorch_model.bin")
        save_file(perturbed(state), str(target / "model.safetensors"))
    elif layout == "vocab.txt tokenizer":
        save_file(state, str(target / "open_clip_model.safetensors"))
        wordpiece_as_vocab_txt(target)
    else:
        raise ValueError(layout)


def embeddings(space, images) -> np.ndarray:
    return np.concatenate([space.embed_images(images), space.embed_texts(["a red circle", "a blue square"])])


@pytest.mark.parametrize(
    "layout",
    [
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.safetensors",
        "open_clip_pytorch_model.bin",
        "bin beside safetensors",
        "bin beside a transformers model.safetensors",
        "vocab.txt tokenizer",
    ],
)
def test_open_clip_embeds_the_same_in_every_layout(layout, tmp_path, images):
    make_open_clip_layout(layout, tmp_path / "clip")
    expected = embeddings(load_uncached("search", TOY / "clip").space, images)
    np.testing.assert_allclose(
        embeddings(load_uncached("search", tmp_path / "clip").space, images), expected, atol=1e-6
    )


def test_open_clip_never_starts_untrained(tmp_path):
    """open_clip itself only warns and starts random weights when a directory has none it knows."""
    copy_without_weights(TOY / "clip", tmp_path / "clip", "open_clip_model.safetensors")
    save_file(load_file(str(TOY / "clip/open_clip_model.safetensors")), str(tmp_path / "clip/model.safetensors"))
    with pytest.raises(ModelLoadError, match="holds no weights this model kind loads.*open_clip_pytorch_model.bin"):
        load_uncached("search", tmp_path / "clip")


# --- a .bin that is more than tensors ------------------------------------------------------------------------------


class WritesAFile:
    """Unpickled by a full unpickler, this writes ``path``: what a malicious checkpoint would do instead."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.path)!r}, 'w').write('ran')",)


def malicious_bin(path: Path, sentinel: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save({**state, "payload": WritesAFile(sentinel)}, path)
    torch.load(path, weights_only=False)  # the control: a full unpickler does run it
    assert sentinel.read_text() == "ran", "the payload must be live for the refusal below to mean anything"
    sentinel.unlink()


def test_a_malicious_transformers_bin_is_refused_and_runs_nothing(tmp_path):
    state = copy_without_weights(TOY / "blip-caption", tmp_path / "blip", "model.safetensors")
    malicious_bin(tmp_path / "blip/pytorch_model.bin", tmp_path / "pwned", state)
    with pytest.raises(ModelLoadError, match="pytorch_model.bin was refused unread.*restricted unpickler") as info:
        load_uncached("caption", tmp_path / "blip")
    assert "safetensors" in info.value.fix
    assert not (tmp_path / "pwned").exists()


def test_a_malicious_open_clip_bin_is_refused_and_runs_nothing(tmp_path):
    state = copy_without_weights(TOY / "clip", tmp_path / "clip", "open_clip_model.safetensors")
    malicious_bin(tmp_path / "clip/open_clip_pytorch_model.bin", tmp_path / "pwned", state)
    with pytest.raises(
        ModelLoadError,
        match="Could not load model '.*clip': the weights file .*open_clip_pytorch_model.bin was refused unread",
    ):
        load_uncached("search", tmp_path / "clip")
    assert not (tmp_path / "pwned").exists()


def test_read_weights_reads_both_formats_alike(tmp_path):
    state = load_file(str(TOY / "clip/open_clip_model.safetensors"))
    torch.save(state, tmp_path / "weights.bin")
    from_bin = read_weights(tmp_path / "weights.bin")
    assert from_bin.keys() == state.keys() and all(torch.equal(from_bin[k], state[k]) for k in state)


# --- the Hub-shaped repos of every registry family, in each layout such a repo may have ----------------------------

REPRESENTATIVES = {  # family -> (task, hub id): one registry repo per family of tests/hublike/repos.py
    "blip": ("caption", "Salesforce/blip-image-captioning-base"),
    "vit-gpt2": ("caption", "nlpconnect/vit-gpt2-image-captioning"),
    "vilt": ("ask", "dandelin/vilt-b32-finetuned-vqa"),
    "open_clip": ("search", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    "siglip": ("search", "timm/ViT-B-16-SigLIP"),
    "whisper": ("transcribe", "openai/whisper-tiny"),
    "faster-whisper": ("transcribe", "Systran/faster-whisper-tiny"),
}


def _hub_layouts():
    from tests.hublike.repos import LAYOUTS

    return [(family, layout) for family in REPRESENTATIVES for layout in LAYOUTS[family]]


def answers(task: str, model, images, speech: Path):
    """What a user gets from ``model`` (random weights: compared across layouts, not for sense)."""
    if task == "caption":  # random weights never stop on their own: a few tokens tell the layouts apart
        return captions(model, images[:2], max_new_tokens=6)
    if task == "ask":
        return [a.ranked for a in model([(i, "what color is it?") for i in images])]
    if task == "search":
        return embeddings(model.space, images).tolist()
    if model.engine == "transformers":  # decoding 448 random tokens is slow: the tokenizer and one decoder step
        tokenizer = model.processor.tokenizer
        ids = tokenizer("Ask not what your country can do for you.").input_ids
        features = torch.linspace(-1, 1, 80 * 3000).reshape(1, 80, 3000)
        start = torch.tensor([[model.model.generation_config.decoder_start_token_id]])
        with torch.inference_mode():
            logits = model.model(input_features=features, decoder_input_ids=start).logits[0, -1]
        return ids, tokenizer.decode(ids), logits.tolist()
    [transcript] = model([str(speech)], beam_size=1)
    return transcript.text, [(s.start, s.end, s.text) for s in transcript.segments]


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    from tests.conftest import _speak

    return _speak("what color is the shape", tmp_path_factory.mktemp("speech") / "speech.wav")


@pytest.fixture(scope="module")
def main_answers(tmp_path_factory, images, speech):
    """Each representative repo's answers as main holds it (per evidence), computed once."""
    from tests.hublike.repos import repo_files, write_files

    found = {}

    def of(family):
        if family not in found:
            task, hub_id = REPRESENTATIVES[family]
            path = write_files(tmp_path_factory.mktemp(family), repo_files(hub_id))
            found[family] = answers(task, load_uncached(task, path), images, speech)
        return found[family]

    return of


@pytest.mark.parametrize("family,layout", _hub_layouts(), ids=[":".join(pair) for pair in _hub_layouts()])
def test_hub_shaped_repos_answer_the_same_in_every_layout(family, layout, tmp_path, images, speech, main_answers):
    from tests.hublike.repos import repo_files, write_files

    task, hub_id = REPRESENTATIVES[family]
    path = write_files(tmp_path / "repo", repo_files(hub_id, layout=layout))
    if layout == "spiece.model" and importlib.util.find_spec("sentencepiece") is None:
        with pytest.raises(ModelLoadError, match=r"SentencePiece model \(spiece.model\).*pip install sentencepiece"):
            load_uncached(task, path)
        return
    assert close(answers(task, load_uncached(task, path), images, speech), main_answers(family))
