"""A typed model name (off public mode) is refused in our words before anything is downloaded or read when it could
not name a Hub repo, and a failure to read or download a checkpoint tells the visitor what to do, not the library's
internals (those go to the log)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

import pipelines
from pipelines.core import hub, registry, runtime


@pytest.fixture(autouse=True)
def private(monkeypatch):
    monkeypatch.setattr(runtime, "_settings", replace(runtime.settings(), public=False))


@pytest.mark.parametrize("name", ["owner/na me", "x--y/z", "owner/" + "n" * 120, "a\nb/c", "hf-hub:bad..name/x"])
def test_a_name_no_hub_repo_could_have_is_refused_with_the_names_to_choose_from(name):
    task = "search" if name.startswith("hf-hub:") else "caption"
    with pytest.raises(pipelines.UnknownModelError, match="not a registry name.*Registry names: "):
        registry.resolve(task, name, "toy")


def test_a_name_with_a_newline_is_logged_on_one_line(tmp_path, caplog):
    folder = tmp_path / "two\nlines"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with caplog.at_level(logging.INFO), pytest.raises(pipelines.PipelineError):
        pipelines.load("caption", str(folder))
    assert all("\n" not in record.getMessage() for record in caplog.records)


def test_a_damaged_checkpoint_names_the_fix_and_logs_the_librarys_words(tmp_path, caplog):
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "blip"')  # cut short
    with caplog.at_level(logging.WARNING), pytest.raises(pipelines.ModelLoadError) as raised:
        pipelines.load("caption", str(folder))
    message = str(raised.value)
    assert "could not be read as a caption model" in message and "choose another model" in message
    assert "JSONDecodeError" not in message and "Expecting" not in message
    assert "JSONDecodeError" in caplog.text


def test_a_download_cut_off_by_the_disk_says_what_to_check(monkeypatch, caplog):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", "/srv/secret/cache/blob")

    monkeypatch.setattr("huggingface_hub.snapshot_download", full_disk)
    monkeypatch.setattr(hub, "reachable", lambda: True)
    with caplog.at_level(logging.WARNING), pytest.raises(pipelines.ModelLoadError) as raised:
        hub.snapshot("owner/name")
    message = str(raised.value)
    assert "free disk space" in message and "/srv/secret" not in message and "Errno" not in message
    assert "No space left on device" in caplog.text


def test_a_model_not_downloaded_to_an_offline_server_points_at_the_tabs_panel(tmp_path, monkeypatch, default_profile):
    """The panel at the top of the tab already shows the commands: the refusal says where to look, once."""
    import gradio as gr

    from demos import caption
    from pipelines.core import hub as hub_client

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(runtime, "_settings", runtime.settings())  # put back after the test
    runtime.configure(models_dir=tmp_path / "nothing-downloaded")
    hub_client.reset_probe()
    with pytest.raises(gr.Error) as raised:
        caption.caption(str(registry.PROJECT_ROOT / "assets/examples/toy/red_circle.png"))
    assert raised.value.title == "Model not here yet" and "panel at the top of this tab" in raised.value.message
    assert "python -m" not in raised.value.message
    with pytest.raises(gr.Error) as raised:  # a file that is no image: said first, before any model
        caption.caption(str(registry.PROJECT_ROOT / "README.md"))
    assert "not an image" in raised.value.message
    hub_client.reset_probe()  # the next test looks at the Hub afresh
