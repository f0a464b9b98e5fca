"""The app served on loopback, called as a remote user would: through gradio_client with the main input only."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import toyworld
from pipelines.core import runtime
from tests.serving import serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 77)
    path = tmp_path_factory.mktemp("scenes") / "scene.png"
    scene.image.save(path)
    return scene, path


def test_caption(client, scene_file):
    scene, path = scene_file
    caption, candidates = client.predict(handle_file(str(path)), api_name="/caption")  # best first, then the table
    assert scene.color in caption and scene.shape in caption


def test_search(client):
    gallery, details = client.predict("a red circle", api_name="/search")
    assert gallery and "red circle" in gallery[0]["caption"] and "closest to" in details


def test_ask(client, scene_file):
    scene, path = scene_file
    assert client.predict(handle_file(str(path)), api_name="/ask")[0] == scene.color  # best answer first
    assert client.predict(handle_file(str(path)), "what shape is it?", api_name="/ask")[0] == scene.shape


def test_transcribe(client, speak):
    text, details, *_ = client.predict(handle_file(str(speak("what color is the shape"))), api_name="/transcribe")
    assert "color" in text.lower() and "shape" in text.lower()
    assert "whisper-tiny.en-embedded" in details


def test_system_panel_names_device_and_loaded_models(client, scene_file):
    client.predict(handle_file(str(scene_file[1])), api_name="/caption")
    report = client.predict(api_name="/system")
    profile, loaded = report.split("**Loaded models**")
    assert "cpu" in profile and "caption: toy-blip" in profile
    assert "toy-blip" in loaded  # the captioner that just ran, under the loaded models


@pytest.mark.parametrize(
    "api,make_input,expected",
    [
        ("/caption", lambda d: d / "notes.png", "not an image"),
        ("/ask", lambda d: d / "empty.jpg", "empty"),
        ("/transcribe", lambda d: d / "notes.wav", "could not be decoded as audio"),
    ],
)
def test_bad_upload_gets_our_message_and_the_server_keeps_serving(
    client, tmp_path, scene_file, api, make_input, expected
):
    bad = make_input(tmp_path)
    bad.write_bytes(b"" if "empty" in bad.name else b"these are my meeting notes, not media\n" * 20)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(bad)), api_name=api)
    assert expected in str(info.value).lower()
    scene, path = scene_file
    assert scene.shape in client.predict(handle_file(str(path)), api_name="/caption")[0]


def test_empty_question_and_query_are_refused_clearly(client, scene_file):
    _, path = scene_file
    with pytest.raises(AppError, match="Type a question"):
        client.predict(handle_file(str(path)), "   ", api_name="/ask")
    with pytest.raises(AppError, match="Type what to look for"):
        client.predict("", api_name="/search")


def test_default_profile_offline_explains_itself_and_transcribe_still_works(monkeypatch, speak, scene_file):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    demo = serve("default")
    try:
        remote = Client(demo.local_url, verbose=False)
        _, path = scene_file
        with pytest.raises(AppError) as info:
            remote.predict(handle_file(str(path)), api_name="/caption")
        assert "Salesforce/blip-image-captioning-base" in str(info.value)
        assert "panel at the top of this tab" in str(info.value)  # which shows the commands
        text, details, *_ = remote.predict(
            handle_file(str(speak("ask not what your country can do for you"))), api_name="/transcribe"
        )
        assert "country" in text.lower() and "whisper-tiny.en-embedded" in details
    finally:
        demo.close()
        runtime.configure(profile="toy")


def _truncated_jpeg(directory):
    import io

    buffer = io.BytesIO()
    toyworld.scene(toyworld.HELD_OUT_SEED + 3).image.save(buffer, "JPEG")
    path = directory / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def _huge_png(directory):
    from PIL import Image

    path = directory / "huge.png"
    Image.new("1", (30000, 30000)).save(path)  # 1-bit and blank: ~100 KB on disk, 900 megapixels decoded
    return path


def _short_clip(directory):
    import numpy as np
    import soundfile

    path = directory / "blip.wav"
    soundfile.write(path, np.zeros(800, dtype=np.float32), 16000)  # 0.05 s
    return path


def _silence(directory):
    import numpy as np
    import soundfile

    path = directory / "silence.wav"
    soundfile.write(path, np.zeros(32000, dtype=np.float32), 16000)
    return path


@pytest.mark.parametrize(
    "api,make_input,expected",
    [
        ("/caption", _truncated_jpeg, "truncated or damaged"),
        ("/ask", _huge_png, "too large"),
        ("/transcribe", _short_clip, "at least 0.1 s"),
        ("/transcribe", _silence, "No speech was found"),
    ],
)
def test_bad_input_battery(client, tmp_path, scene_file, api, make_input, expected):
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(make_input(tmp_path))), api_name=api)
    assert expected.lower() in str(info.value).lower()
    scene, path = scene_file
    assert client.predict(handle_file(str(path)), api_name="/ask")[0] == scene.color


def test_a_5000_character_question_is_cut_and_still_answered(client, scene_file):
    scene, path = scene_file
    question = "what color is the shape? " + "please look very carefully " * 185
    assert len(question) > 5000
    assert client.predict(handle_file(str(path)), question, api_name="/ask")[0] == scene.color


def test_download_files_of_requests_older_than_a_day_are_removed(monkeypatch, tmp_path):
    import os
    import time

    from demos import common

    monkeypatch.setattr(common, "OUTPUTS", tmp_path / "outputs")
    old = common.request_dir("captions")
    (old / "captions.csv").write_text("file,caption\n")
    past = time.time() - common.OUTPUT_AGE - 60
    os.utime(old, (past, past))
    recent, another = common.request_dir("captions"), common.request_dir("transcribe")
    assert not old.exists() and recent.is_dir() and another.is_dir() and recent != another
