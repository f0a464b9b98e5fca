"""Shared fixtures: the toy profile on CPU, toy scenes, and speech made with espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import toyworld
from pipelines import runtime

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def toy_profile():
    """Every test runs on the CPU with the bundled toy models unless it configures otherwise."""
    runtime.configure(profile="toy", device="cpu")
    yield


@pytest.fixture
def default_profile():
    """The hub profile, for tests of what an offline machine shows; restores the toy profile after."""
    runtime.configure(profile="default")
    yield
    runtime.configure(profile="toy")


@pytest.fixture(scope="session")
def fresh_scenes() -> list[toyworld.Scene]:
    """Scenes no toy model saw in training."""
    return toyworld.scenes(40, start_seed=toyworld.HELD_OUT_SEED + 5000)


def _speak(text: str, path: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng (.ci/run does)")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path


@pytest.fixture
def speak(tmp_path):
    """speak("some words") -> path of a WAV file with those words spoken by espeak-ng."""
    counter = iter(range(1000))
    return lambda text: _speak(text, tmp_path / f"speech{next(counter)}.wav")
