"""A model that cannot load says which model, why, and what to do; nothing else breaks."""

import json
import shutil

import pytest

import pipelines
from pipelines.core.errors import ModelLoadError
from pipelines.core.registry import PROJECT_ROOT

TOY_CAPTIONER = PROJECT_ROOT / "assets/models/toy/blip-caption"


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    missing.mkdir()
    missing.rmdir()
    with pytest.raises(pipelines.UnknownModelError, match="not a registry name, an existing local directory"):
        pipelines.load("caption", str(missing))


def test_corrupt_weights(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(TOY_CAPTIONER, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelLoadError) as info:
        pipelines.load("caption", str(broken))
    message = str(info.value)
    assert str(broken) in message and "could not be read" in message and "choose another model" in message


def test_wrong_kind_of_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="'bert' model, which the caption tab cannot run"):
        pipelines.load("caption", str(tmp_path))


def test_a_bin_that_is_not_tensors_is_refused(tmp_path):
    shutil.copytree(TOY_CAPTIONER, tmp_path / "pickled")
    (tmp_path / "pickled/model.safetensors").rename(tmp_path / "pickled/pytorch_model.bin")
    with pytest.raises(
        ModelLoadError,
        match="pytorch_model.bin was refused unread: PyTorch .bin weights are read only "
        "through torch's restricted unpickler",
    ):
        pipelines.load("caption", str(tmp_path / "pickled"))


@pytest.mark.parametrize("task", ["caption", "search", "ask"])
def test_hub_models_fail_politely_offline(default_profile, monkeypatch, task):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on this machine: the Hub is out of reach
    with pytest.raises(ModelLoadError) as info:
        pipelines.load(task)
    message = str(info.value)
    assert pipelines.registry.resolve(task, None, "default").source in message
    assert "cannot reach the Hugging Face Hub" in message
    assert "python -m pipelines.download" in message and "--profile toy" in message
