"""Public mode, as a stranger sees it through the API: registry names only (no Hub ids, server paths or packages,
and no probe of the server's disk), a System panel without paths or library versions, and errors that show an
error id instead of details. Also what holds in every mode: typed names never import a package or leak an OSError,
unexpected failures never show their text, NaN numbers are refused by name, user mistakes log one line."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from importlib.metadata import version

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import pipelines
from demos import common
from pipelines.core import runtime
from pipelines.core.registry import PROJECT_ROOT
from pipelines.search.retrieval import SearchPipeline
from tests.serving import serve

TOY_CLIP = PROJECT_ROOT / "assets/models/toy/clip"


@pytest.fixture(scope="module")
def public_client():
    """A visitor of the toy app served in public mode (public mode is put back as it was after the module)."""
    before = runtime.settings().public
    runtime.configure(public=True)
    demo = serve("toy")
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()
        runtime.configure(public=before)


def refusal(client: Client, **inputs) -> str:
    with pytest.raises(AppError) as info:
        client.predict(api_name="/search", **inputs)
    return str(info.value)


@pytest.mark.parametrize(
    "typed",
    ["laion/CLIP-ViT-B-32-laion2B-s34B-b79K", str(TOY_CLIP), "package:this.x/y", "hf-hub:timm/ViT-B-16-SigLIP"],
)
def test_public_mode_takes_registry_names_only(public_client, typed, capfd):
    message = refusal(public_client, query="a red circle", model=typed)
    assert "Unknown search model" in message and "toy-clip" in message  # the names to choose from
    assert "Beautiful is better than ugly" not in capfd.readouterr().out  # `this` was never imported


def test_public_mode_answers_alike_for_an_existing_and_a_missing_server_directory(public_client):
    there, missing = str(TOY_CLIP), str(TOY_CLIP.parent / "not-there")
    answer_there = refusal(public_client, query="a red circle", model=there)
    answer_missing = refusal(public_client, query="a red circle", model=missing)
    assert answer_there.replace(there, "NAME") == answer_missing.replace(missing, "NAME")


def test_public_system_panel_shows_models_and_devices_but_no_paths_or_versions(public_client):
    public_client.predict(query="a red circle", api_name="/search")  # a registry model is loaded
    report = public_client.predict(api_name="/system")
    assert "toy-clip" in report and "cpu" in report and "float32" in report
    assert "/" not in report, report  # no server path, no Hub source
    for package in ("torch", "gradio", "transformers"):
        assert version(package) not in report


def test_public_mode_hides_why_a_model_could_not_load(public_client, monkeypatch):
    def broken(spec, device, dtype):
        raise pipelines.ModelLoadError(spec.name, "the directory /srv/models/secret does not exist", "Fix it")

    monkeypatch.setattr(runtime, "cache", runtime.ModelCache())  # nothing loaded yet: the next request builds
    monkeypatch.setattr(pipelines, "_build", broken)
    message = refusal(public_client, query="a red circle")
    assert "unavailable right now (error id" in message and "/srv" not in message


def test_a_crash_shows_an_error_id_and_no_details(public_client, monkeypatch, caplog):
    def crash(self, batch, options):
        raise RuntimeError("secret detail at /srv/app/internal.py")

    monkeypatch.setattr(SearchPipeline, "_forward", crash)
    with caplog.at_level(logging.WARNING, logger="demos.common"):
        message = refusal(public_client, query="a red circle")
    assert "Something went wrong on the server (error id" in message
    assert "secret" not in message and "RuntimeError" not in message and "/srv" not in message
    [record] = [r for r in caplog.records if r.name == "demos.common"]
    error_id = message.split("error id ")[1][:8]
    assert record.levelno == logging.ERROR and error_id in record.getMessage() and record.exc_info


def test_a_user_mistake_logs_one_warning_line_without_a_traceback(public_client, caplog, capfd):
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="demos.common"):
        message = refusal(public_client, query="   ")
    assert "Type what to look for" in message
    [record] = [r for r in caplog.records if r.name == "demos.common"]
    assert record.levelno == logging.WARNING and "Type what to look for" in record.getMessage()
    assert "error id" not in record.getMessage() and not record.exc_info  # no id the visitor was not shown
    assert "Traceback" not in capfd.readouterr().err


def test_a_number_that_is_not_a_number_is_refused_by_name(public_client):
    # gradio_client will not send NaN (it is not JSON), but a raw request can: Python's JSON reader takes it
    url = public_client.src.rstrip("/")
    body = '{"data": ["a red circle", NaN, "examples", "", null, null]}'
    started = httpx.post(f"{url}/gradio_api/call/search", content=body, headers={"content-type": "application/json"})
    answer = httpx.get(f"{url}/gradio_api/call/search/{started.json()['event_id']}", timeout=120).text
    assert "event: error" in answer and "top_k must be a number, not nan" in answer
    assert "cannot convert" not in answer


def test_the_model_box_says_what_it_takes_in_each_mode(monkeypatch):
    # A typed name reaches pipelines.load in both modes: public mode refuses it there, with the names to choose from
    # (test_public_mode_takes_registry_names_only).
    monkeypatch.setattr(runtime, "_settings", replace(runtime.settings(), public=True))
    box = common.model_choice("search")
    assert box.allow_custom_value and box.info == "A name from the list"
    monkeypatch.setattr(runtime, "_settings", replace(runtime.settings(), public=False))
    assert "Hugging Face Hub id" in common.model_choice("search").info


@pytest.fixture
def private(monkeypatch):
    """Off public mode for one test (typed Hub ids and directories allowed)."""
    monkeypatch.setattr(runtime, "_settings", replace(runtime.settings(), public=False))


def test_off_public_mode_a_typed_name_never_imports_a_package(private, capsys):
    with pytest.raises(pipelines.UnknownModelError, match="Unknown search model 'package:this.x/y'"):
        pipelines.load("search", "package:this.x/y")
    assert "Beautiful is better than ugly" not in capsys.readouterr().out


def test_a_name_the_file_system_cannot_look_up_gets_our_message(private):
    with pytest.raises(pipelines.UnknownModelError, match="Unknown caption model 'aaaa.*not a registry name"):
        pipelines.load("caption", "a" * 5000)


def test_memory_is_handed_back_after_heavy_requests_only(monkeypatch):
    asked = []
    monkeypatch.setattr(common.memory_release, "request", lambda: asked.append(1))
    batch, caption = common.user_errors(lambda: "batch"), common.user_errors(lambda: "caption")
    with gr.Blocks() as demo:
        button = gr.Button()
        button.click(batch, api_name="batch", concurrency_id=common.GPU)
        button.click(caption, api_name="caption", concurrency_id=common.BATCHED)
    common.release_memory_after(demo)
    assert caption() == "caption" and asked == []  # a small request: no full garbage collection after it
    assert batch() == "batch" and asked == [1]


def test_a_release_runs_off_the_request_and_follows_the_last_one_asked(monkeypatch):
    released = []
    monkeypatch.setattr(runtime, "release_memory", lambda: released.append(1))
    release = common.memory_release  # the app's own helper thread (no new thread per test)
    monkeypatch.setattr(release, "interval", 0.0)
    runs = release.runs
    release.request()
    for _ in range(3000):  # it runs on the helper thread, after the answer: wait for it
        if release.runs > runs and released:
            break
        time.sleep(0.01)
    assert released


def test_a_part_that_could_not_load_its_model_says_so_without_details_in_public_mode(monkeypatch, caplog):
    error = pipelines.ModelLoadError("toy-clip", "the directory /srv/models/clip does not exist", "Re-create it")
    monkeypatch.setattr(runtime, "_settings", replace(runtime.settings(), public=True))
    with caplog.at_level(logging.WARNING, logger="pipelines"):
        shown = pipelines.visitor_message(error)
    assert "unavailable right now (error id" in shown and "/srv" not in shown
    assert "/srv/models/clip" in caplog.text  # the details are in the log
    monkeypatch.setattr(runtime, "_settings", replace(runtime.settings(), public=False))
    assert pipelines.visitor_message(error) == str(error)


def test_a_refusal_never_echoes_a_huge_input_whole():
    def echoes(text):
        raise pipelines.InputError(f"Could not use {text!r}")

    with pytest.raises(gr.Error) as raised:
        common.user_errors(echoes, gpu=False)("x" * 1_000_000)
    assert raised.value.message.startswith("Could not use 'xxx") and len(raised.value.message) <= 4002
