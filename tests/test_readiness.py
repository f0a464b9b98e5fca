"""Models ready before the first click: the warm-up loads and runs the profile's models in the background, and in
the default profile with models absent each tab's panel says what it needs and how to get it (the command where
the Hub is out of reach, a Download button that fetches with progress where it answers).

Against the Hub look-alike (tests/hublike) with shrunk, Hub-shaped repos; what these tests load is dropped from the
process-wide model cache afterwards, and the toy profile put back."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client

import app
import pipelines
from demos import readiness as panels
from pipelines import readiness
from pipelines.core import hub as hub_client
from pipelines.core import registry, runtime
from tests.conftest import models_put_back
from tests.hublike import hub_fixture
from tests.hublike.repos import build_hub
from tests.serving import free_port

pytestmark = pytest.mark.slow

hub = hub_fixture(scope="module")
WAIT = 300  # seconds at most for a background warm-up on a busy 2-core machine (a bound, not a timing)


@pytest.fixture
def fresh_models():
    """No model loaded and nothing measured, as in a fresh server; the cache, fallbacks and settings put back."""
    with models_put_back(), pytest.MonkeyPatch.context() as patch:
        runtime.cache.clear()
        pipelines.fallbacks.clear()
        readiness.forget()
        patch.setattr(runtime, "_settings", runtime.settings())
        yield


def system_report(client: Client) -> str:
    return client.predict(api_name="/system")


def test_the_warm_up_loads_and_runs_the_profiles_models_before_a_first_click(fresh_models, monkeypatch):
    runtime.configure(profile="toy", device="cpu")
    gate, load = threading.Event(), pipelines.load  # the warm-up's loads wait until the page has been looked at

    def held_load(*args, **kwargs):
        gate.wait(WAIT)
        return load(*args, **kwargs)

    monkeypatch.setattr(pipelines, "load", held_load)
    demo = app.build_demo()
    app.serve(demo, host="127.0.0.1", port=free_port(), block=False, warmup=True)
    try:
        client = Client(demo.local_url, verbose=False)
        first = system_report(client)  # served while the warm-up runs
        gate.set()
        deadline = time.monotonic() + WAIT
        while readiness.warming() and time.monotonic() < deadline:
            time.sleep(0.5)
        report = system_report(client)
    finally:
        demo.close()
    assert "loading…" in first and ": ready" not in first, first  # served while the warm-up ran
    for task in registry.tasks():
        name = registry.profile_default(task, "toy")
        assert f"- {task}: {name}: ready" in report, report
        assert name in report.split("**Loaded models**")[1], report  # loaded before anyone clicked
    assert "loading…" not in report


def test_without_the_flag_models_load_on_first_use(fresh_models):
    runtime.configure(profile="toy", device="cpu")
    demo = app.build_demo()
    app.serve(demo, host="127.0.0.1", port=free_port(), block=False)  # what tests/serving.py does
    try:
        report = system_report(Client(demo.local_url, verbose=False))
    finally:
        demo.close()
    assert "none yet" in report and "loads on first use" in report and "loading…" not in report


def test_the_command_line_turns_the_warm_up_off():
    assert app.parse_args([]).warmup is True
    assert app.parse_args(["--no-warmup"]).warmup is False


def test_offline_with_an_empty_cache_each_tab_names_its_models_and_the_command(hub, fresh_models, tmp_path):
    runtime.configure(profile="default", device="cpu", models_dir=tmp_path / "empty")
    hub.offline = True
    hub_client.reset_probe()
    try:
        texts = {tab: panels.panel_text(tasks) for tab, tasks in panels.TAB_TASKS.items()}
    finally:
        hub.offline = False
        hub_client.reset_probe()
    for tab, tasks in panels.TAB_TASKS.items():
        text = texts[tab]
        for task in tasks:
            assert f"`{registry.profile_default(task, 'default')}`" in text, (tab, text)
        assert f"python -m pipelines.download --models-dir {tmp_path / 'empty'} --tasks {' '.join(tasks)}" in text
        assert f"python app.py --models-dir {tmp_path / 'empty'}" in text
    assert "whisper-tiny.en-embedded" in texts["transcribe"]  # what runs until whisper-small is here


def test_in_public_mode_the_command_names_no_server_path(hub, fresh_models, tmp_path):
    runtime.configure(profile="default", device="cpu", models_dir=tmp_path / "private-place", public=True)
    hub.offline = True
    hub_client.reset_probe()
    try:
        text = panels.panel_text(panels.TAB_TASKS["caption"])
    finally:
        hub.offline = False
        hub_client.reset_probe()
    assert "--models-dir DIR" in text and str(tmp_path) not in text and "private-place" not in text


def test_the_download_fetches_the_models_with_progress_and_the_panel_hides(hub, fresh_models, tmp_path):
    build_hub(hub.root, [registry.resolve("search", None, "default").source])
    runtime.configure(profile="default", device="cpu", models_dir=tmp_path / "models")
    hub_client.reset_probe()
    tasks = panels.TAB_TASKS["search"]
    before = panels.panel_text(tasks)
    assert "`clip-vit-b-32`" in before and "python -m pipelines.download" not in before  # the Hub answers
    size = readiness.download_size("search")
    assert size and panels._size(size) in before  # its size, as the Hub lists it

    seen = []
    [final] = readiness.download(tasks, on_progress=seen.append)

    downloading = [status for status in seen if status.state == readiness.DOWNLOADING]
    assert downloading and all(status.total_bytes == size for status in downloading)
    shown = panels._panel_values(tasks, {"search": downloading[-1]})[1].value  # what the page said meanwhile
    assert "**Downloading** `clip-vit-b-32` (Search)" in shown and f"of {panels._size(size)}" in shown
    assert final.state == readiness.READY, final
    assert readiness.present("search") and panels.panel_text(tasks) == ""  # the panel hides
    [result] = pipelines.load("search")(["a red circle"])  # and the tab answers from the downloaded model
    assert result.hits


def test_a_model_that_will_not_load_is_reported_by_its_panel_not_raised(hub, fresh_models, tmp_path):
    from pipelines.download import fetch
    from tests.hublike import write_repo
    from tests.hublike.repos import repo_files

    source = registry.resolve("search", None, "default").source
    broken = {
        name: (b"not weights" * 100 if name.endswith((".safetensors", ".bin")) else content)
        for name, content in repo_files(source).items()
    }
    write_repo(hub.root, source, broken)
    runtime.configure(profile="default", device="cpu", models_dir=tmp_path / "models")
    hub_client.reset_probe()
    fetch("search")  # on disk, complete as far as file names go
    assert readiness.present("search")

    readiness.warm_up(["search"]).join(WAIT)

    status = readiness.status("search")
    assert status.state == readiness.FAILED and "clip-vit-b-32" in status.message
    text = panels.panel_text(panels.TAB_TASKS["search"])
    assert "**Not usable:** `clip-vit-b-32` (Search)" in text and "could not be read" in text
