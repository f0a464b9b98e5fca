"""`python -m pipelines.download` and the loaders fetch exactly the files a model needs from a Hub-shaped repo (one
weight format, never TensorFlow / Flax / ONNX copies or open_clip repos' transformers copy), and say so loudly
when the weights are not there. Repos are made from the toy checkpoints and served by the Hub look-alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipelines import download
from pipelines.core import registry, runtime
from pipelines.core.checkpoints import OPEN_CLIP, TRANSFORMERS, hub_files
from pipelines.core.errors import ModelLoadError
from tests.hublike import hub_fixture, run_download, write_repo

pytestmark = pytest.mark.slow


hub = hub_fixture()

TOY = registry.PROJECT_ROOT / "assets/models/toy"
CAPTIONER = "Salesforce/blip-image-captioning-base"  # the default profile's ids, here holding toy weights
CLIP = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
STUBS = {
    "tf_model.h5": b"\x89HDF\r\n\x1a\n" + bytes(64),
    "flax_model.msgpack": bytes(64),
    "onnx/model.onnx": bytes(64),
    "README.md": "# a model card\n",
    ".gitattributes": "*.bin filter=lfs\n",
}


def toy_files(name: str, skip: str) -> dict[str, Path]:
    return {p.name: p for p in (TOY / name).iterdir() if p.name != skip}


def blip_bin_only(tmp_path: Path) -> dict:
    """The default captioner's repo as evidence has it: PyTorch .bin weights and TensorFlow's, no safetensors."""
    torch.save(load_file(str(TOY / "blip-caption/model.safetensors")), tmp_path / "pytorch_model.bin")
    return {
        **toy_files("blip-caption", "model.safetensors"),
        "pytorch_model.bin": tmp_path / "pytorch_model.bin",
        **STUBS,
    }


def clip_many_formats(tmp_path: Path) -> dict:
    """An open_clip repo carrying its weights three ways plus a transformers copy (config.json + model.safetensors)."""
    state = load_file(str(TOY / "clip/open_clip_model.safetensors"))
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    return {
        **toy_files("clip", ""),
        "open_clip_pytorch_model.bin": tmp_path / "open_clip_pytorch_model.bin",
        "model.safetensors": TOY / "clip/open_clip_model.safetensors",
        "config.json": '{"model_type": "clip"}',
        **STUBS,
    }


def spec(task: str, source: str, backend: str) -> registry.ModelSpec:
    return registry.ModelSpec(task, source, backend, source)


def downloaded(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_a_bin_only_repo_downloads_its_bin_and_nothing_of_other_frameworks(hub, tmp_path):
    write_repo(hub.root, CAPTIONER, blip_bin_only(tmp_path))
    path = download.fetch("caption", CAPTIONER)
    assert downloaded(path) == {
        "config.json",
        "generation_config.json",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "pytorch_model.bin",
    }


def test_an_open_clip_repo_downloads_only_its_open_clip_safetensors(hub, tmp_path):
    write_repo(hub.root, CLIP, clip_many_formats(tmp_path))
    path = download.fetch("search", CLIP)
    assert downloaded(path) == {
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }


def test_sharded_safetensors_are_fetched_with_their_index(hub):
    listing = [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
        "tf_model.h5",
        "flax_model.msgpack.index.json",
        "vocab.txt",
    ]
    write_repo(hub.root, "acme/sharded", dict.fromkeys(listing, b"{}"))
    assert hub_files(spec("caption", "acme/sharded", "blip"), TRANSFORMERS) == [
        "config.json",
        "vocab.txt",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]


def test_a_repo_without_weights_we_load_is_named_with_what_it_has(hub):
    write_repo(hub.root, "acme/tf-only", {"open_clip_config.json": "{}", "model.safetensors": b"x", **STUBS})
    with pytest.raises(
        ModelLoadError,
        match=r"acme/tf-only holds none of the weight files this model kind loads "
        r"\(open_clip_model.safetensors, .*\); it has flax_model.msgpack, "
        r"model.safetensors, onnx/model.onnx, tf_model.h5",
    ):
        hub_files(spec("search", "acme/tf-only", "open_clip"), OPEN_CLIP)


def test_the_download_command_fetches_and_then_fails_loudly_without_weights(hub, tmp_path):
    write_repo(hub.root, CAPTIONER, blip_bin_only(tmp_path))
    write_repo(hub.root, CLIP, {"open_clip_config.json": (TOY / "clip/open_clip_config.json").read_text(), **STUBS})
    done = run_download(hub, hub.home, "--tasks", "caption", "search", "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 1, done.stderr
    assert "caption: " in done.stdout and (tmp_path / "models").is_dir()
    assert list((tmp_path / "models").rglob("pytorch_model.bin")) and not list((tmp_path / "models").rglob("*.h5"))
    assert (
        f"search: FAILED: Could not load model 'clip-vit-b-32': the Hub repo {CLIP} holds none of the weight"
        in done.stderr
    )
    assert "Not downloaded: search" in done.stderr


def test_the_download_command_offline_says_what_to_do(hub):
    hub.offline = True
    done = run_download(hub, hub.home, "--tasks", "caption")
    assert done.returncode == 1
    assert "cannot reach the Hugging Face Hub" in done.stderr and "--profile toy" in done.stderr


def test_a_cached_model_loads_offline_through_the_same_policy(hub, tmp_path):
    write_repo(hub.root, CAPTIONER, blip_bin_only(tmp_path))
    download.fetch("caption", CAPTIONER)
    hub.offline = True
    from pipelines.core import hub as hub_client

    hub_client.reset_probe()
    try:
        cls = __import__("pipelines").pipeline_class(spec("caption", CAPTIONER, "blip"))
        captioner = cls.load(spec("caption", CAPTIONER, "blip"), torch.device("cpu"), torch.float32)
    finally:
        hub_client.reset_probe()
    import toyworld

    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 11)
    assert scene.color in captioner([scene.image])[0].text
    assert runtime.settings().profile == "toy"
