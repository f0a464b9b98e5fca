"""Shared fixtures: the toy profile on CPU, the toy app served once (for gradio_client and chromium), toy scenes,
and speech made with espeak-ng."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import toyworld
from pipelines.core import runtime

ROOT = Path(__file__).resolve().parent.parent
# Gradio's copies of uploads and examples in a folder of this test run (set before gradio is imported): a server
# closing, here or in another run on the machine, deletes its copies from the shared /tmp/gradio.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="mm-tests-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's; never `playwright install`
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True, scope="session")
def toy_profile():
    """Every test runs on the CPU with the bundled toy models unless it configures otherwise."""
    runtime.configure(profile="toy", device="cpu")
    yield


@contextlib.contextmanager
def models_put_back():
    """The loaded models, the fallbacks taken and what readiness measured are as they were after the block (a test
    that loads other models or makes a fallback run leaves the next tests the models they expect)."""
    import pipelines
    from pipelines import readiness

    saved_cache, saved_fallbacks = dict(runtime.cache.items()), dict(pipelines.fallbacks)
    try:
        yield
    finally:
        runtime.cache.clear()
        for key, value in saved_cache.items():
            runtime.cache.get(key, lambda value=value: value)
        pipelines.fallbacks.clear()
        pipelines.fallbacks.update(saved_fallbacks)
        readiness.forget()


@pytest.fixture
def default_profile():
    """The hub profile, for tests of what an offline machine shows; restores the toy profile after."""
    runtime.configure(profile="default")
    yield
    runtime.configure(profile="toy")


@pytest.fixture(scope="session")
def toy_app():
    """The app with the toy profile, served once on a loopback port as `python app.py` would serve it."""
    from tests.serving import serve

    demo = serve("toy")
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def app_with_own_cache(tmp_path_factory):
    """The toy app served for one test module with an app cache directory of its own (uploads, embeddings), so
    what its visitors store starts empty; the previous cache directory after."""
    from tests.serving import serve

    before = runtime.settings().cache_dir
    runtime.configure(cache_dir=tmp_path_factory.mktemp("cache"))
    demo = serve("toy")
    yield demo
    demo.close()
    runtime.configure(cache_dir=before)


@pytest.fixture(scope="module")
def client(toy_app):
    """A remote visitor of the toy app through gradio_client, with a session of its own."""
    from gradio_client import Client

    return Client(toy_app.local_url, verbose=False)


@pytest.fixture(scope="module")
def page(toy_app):
    """A person's browser on the toy app: a headless Debian chromium tab driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(toy_app.local_url)
        yield page
        browser.close()


@pytest.fixture
def cache_dir(tmp_path):
    """A fresh app cache directory (embeddings, uploads, indexes) for one test; the previous one after."""
    before = runtime.settings().cache_dir
    runtime.configure(cache_dir=tmp_path / "cache")
    yield tmp_path / "cache"
    runtime.configure(cache_dir=before)


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
