"""Set-ups for the Transcribe tests: speech in any espeak-ng voice, and a machine where whisper-small cannot load."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pipelines.core import hub, runtime
from tests.conftest import models_put_back


@pytest.fixture
def say(tmp_path):
    """say(text, voice) -> a WAV of ``text`` spoken by espeak-ng in ``voice`` (en-us, fr, de, ...)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng (.ci/run does)")
    made = iter(range(1000))

    def speak(text: str, voice: str = "en-us"):
        path = tmp_path / f"{voice}-{next(made)}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
        return path

    return speak


@pytest.fixture
def hub_out_of_reach(monkeypatch, tmp_path):
    """whisper-small cannot load here: the Hub is off and nothing is downloaded. Afterwards the model cache and the
    fallbacks are as they were (the stand-in is cached under whisper-small's key while this lasts)."""
    before = runtime.settings().models_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with models_put_back():
        runtime.configure(models_dir=tmp_path / "nothing-downloaded")
        hub.reset_probe()
        yield
        runtime.configure(models_dir=before)
        hub.reset_probe()
