"""The bad-input battery: every malformed image, recording and text the tab issues name, thrown at every API that
takes one, through gradio_client as a remote visitor would. Each gets our message (not Gradio's generic error),
and the next valid request to the same API still succeeds. Option-specific refusals live with each tab's tests."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import toyworld
from tests.conftest import ROOT
from tests.test_io_properties import png

pytestmark = pytest.mark.slow


QUESTION = ROOT / "assets/examples/speech/what_color_is_the_shape.wav"
SCENE = toyworld.scene(toyworld.HELD_OUT_SEED + 61_000)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    SCENE.image.save(d / "scene.png")
    (d / "notes.png").write_text("meeting notes, not an image\n" * 20)
    (d / "empty.jpg").write_bytes(b"")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noise.save(d / "whole.jpg")
    (d / "truncated.jpg").write_bytes((d / "whole.jpg").read_bytes()[:600])
    (d / "bomb.png").write_bytes(png(60_000, 60_000, 8, 2, zlib.compress(b"\0" * 1000)))  # claims 3.6 gigapixels
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.wav").write_text("meeting notes, not a recording\n" * 20)
    soundfile.write(d / "silence.wav", np.zeros(32000, np.float32), 16000)
    soundfile.write(d / "blip.wav", np.zeros(800, np.float32), 16000)
    (d / "cut.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64" + bytes(60))
    return d


BAD_IMAGES = {  # file (None = no image) -> what our message says
    "not-an-image": ("notes.png", "not an image"),
    "empty-file": ("empty.jpg", "empty"),
    "truncated-jpeg": ("truncated.jpg", "could not be decoded"),
    "decompression-bomb": ("bomb.png", "too large|megapixels"),
    "missing": (None, "(?i)image"),
}
# API -> (arguments around the image, a check of a valid answer for SCENE)
IMAGE_APIS = {
    "/caption": (lambda image: [image], lambda out: SCENE.shape in out[0]),
    "/search_image": (lambda image: [image], lambda out: out[0][0]["caption"].startswith(SCENE.color)),
    "/search_composed": (lambda image: [image, "blue"], lambda out: bool(out[0])),
    "/classify": (lambda image: [image, "red circle, blue square, green triangle"], lambda out: bool(out["label"])),
    "/ask": (lambda image: [image, "what color is the shape?"], lambda out: out[0] == SCENE.color),
    "/heatmap": (lambda image: [image, SCENE.color], lambda out: bool(out[0])),
    "/chat": (lambda image: ["what color is the shape?", [image]], lambda out: out.strip().startswith(SCENE.color)),
}


def refused(client, api: str, args: list, pattern: str) -> None:
    with pytest.raises(AppError, match=pattern) as info:
        client.predict(*args, api_name=api)
    assert "Something went wrong" not in str(info.value)  # an input problem is not reported as a crash


@pytest.mark.parametrize("bad", BAD_IMAGES)
@pytest.mark.parametrize("api", IMAGE_APIS)
def test_bad_images(client, files, api, bad):
    if api == "/chat" and bad == "missing":
        pytest.skip("a chat message without an image is a text chat")
    name, pattern = BAD_IMAGES[bad]
    arguments, valid = IMAGE_APIS[api]
    refused(client, api, arguments(handle_file(str(files / name)) if name else None), pattern)
    assert valid(client.predict(*arguments(handle_file(str(files / "scene.png"))), api_name=api))


BAD_RECORDINGS = {
    "zero-bytes": ("empty.wav", "empty"),
    "not-audio": ("notes.wav", "could not be decoded as audio"),
    "broken-mp3": ("cut.mp3", "could not be decoded as audio"),
    "0.05s": ("blip.wav", "at least 0.1 s"),
    "silent": ("silence.wav", "No speech was found"),
    "missing": (None, "(?i)record|upload"),
}
AUDIO_APIS = {
    "/transcribe": (lambda files, audio: [audio], lambda out: "color" in out[0].lower()),
    "/ask_voice": (
        lambda files, audio: [handle_file(str(files / "scene.png")), audio],
        lambda out: out[0] == SCENE.color,
    ),
}


@pytest.mark.parametrize("bad", BAD_RECORDINGS)
@pytest.mark.parametrize("api", AUDIO_APIS)
def test_bad_recordings(client, files, api, bad):
    name, pattern = BAD_RECORDINGS[bad]
    arguments, valid = AUDIO_APIS[api]
    refused(client, api, arguments(files, handle_file(str(files / name)) if name else None), pattern)
    assert valid(client.predict(*arguments(files, handle_file(str(QUESTION))), api_name=api))


BAD_TEXTS = {"empty": "", "spaces": "   \n\t ", "emoji": "🙂🎉🙂"}


@pytest.mark.parametrize("text", BAD_TEXTS)
@pytest.mark.parametrize("api", ["/search", "/ask"])
def test_bad_texts(client, files, api, text):
    scene = handle_file(str(files / "scene.png"))
    arguments = [BAD_TEXTS[text]] if api == "/search" else [scene, BAD_TEXTS[text]]
    refused(client, api, arguments, "(?i)type|words|question|query")
    valid = ["a red circle"] if api == "/search" else [scene, "what color is the shape?"]
    assert client.predict(*valid, api_name=api)[0]


@pytest.mark.parametrize(
    "image,audio,missing",
    [
        ("notes.png", "question", ["not an image"]),
        ("scene", "silence.wav", ["No speech was found"]),
        ("scene", "notes.wav", ["could not be decoded as audio"]),
        (None, None, ["No image was given", "No speech or text was given"]),
    ],
    ids=["bad-image", "silent-speech", "bad-recording", "nothing"],
)
def test_the_studio_runs_what_it_can_and_says_why_not_for_the_rest(client, files, image, audio, missing):
    def given(name):
        special = {"scene": files / "scene.png", "question": QUESTION}
        return handle_file(str(special.get(name) or files / name)) if name else None

    *_, notes = client.predict(given(image), given(audio), api_name="/studio")
    assert all(reason in notes for reason in missing), notes
    transcript, caption, answer, *_ = client.predict(given("scene"), given("question"), api_name="/studio")
    assert answer["label"] == SCENE.color and SCENE.shape in caption
