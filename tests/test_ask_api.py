"""The Ask tab's API served on loopback, called through gradio_client: /ask, /ask_voice, /heatmap, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import toyworld
from tests.test_ask import box_heat, red_and_blue_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Fresh scenes saved as PNG files: [(scene, path)]."""
    directory = tmp_path_factory.mktemp("ask")
    found = []
    for seed in range(toyworld.HELD_OUT_SEED + 30_000, toyworld.HELD_OUT_SEED + 30_004):
        scene = toyworld.scene(seed)
        scene.image.save(directory / f"{seed}.png")
        found.append((scene, str(directory / f"{seed}.png")))
    return found


def test_ask_with_the_image_alone_gives_the_best_answer_first(client, scenes):
    scene, path = scenes[0]
    answer, ranked, table = client.predict(handle_file(path), api_name="/ask")
    assert answer == scene.color == ranked["label"]
    probabilities = [c["confidence"] for c in ranked["confidences"]]
    assert len(probabilities) > 1 and probabilities == sorted(probabilities, reverse=True)
    assert table["data"][0][:2] == ["what color is the shape?", scene.color]


@pytest.mark.parametrize("model", ["toy-blip-vqa", "toy-vilt"])
def test_several_questions_at_once_fill_the_table(client, scenes, model):
    scene, path = scenes[1]
    answer, ranked, table = client.predict(
        handle_file(path), "what shape is it?\n\nwhat color is it?\n", model, 3, api_name="/ask"
    )
    assert answer.splitlines() == [scene.shape, scene.color]
    expected = [["what shape is it?", scene.shape], ["what color is it?", scene.color]]
    assert [row[:2] for row in table["data"]] == expected
    assert ranked["label"] == scene.shape and 1 < len(ranked["confidences"]) <= 3  # BLIP merges beams alike


def test_a_spoken_question_is_transcribed_and_answered(client, scenes, speak):
    scene, path = scenes[2]
    spoken = handle_file(str(speak("what color is the shape")))
    answer, ranked, table, question = client.predict(handle_file(path), spoken, api_name="/ask_voice")
    assert "color" in question.lower() and "shape" in question.lower()
    assert answer == scene.color and table["data"][0][0] == question


def test_a_silent_spoken_question_says_no_speech_was_found(client, scenes, tmp_path):
    import soundfile

    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(32000, dtype=np.float32), 16000)
    with pytest.raises(AppError, match="No speech was found"):
        client.predict(handle_file(scenes[0][1]), handle_file(str(silence)), api_name="/ask_voice")
    with pytest.raises(AppError, match="Record or upload a spoken question"):
        client.predict(handle_file(scenes[0][1]), api_name="/ask_voice")


def test_the_heatmap_endpoint_shows_where_clip_finds_the_words(client, tmp_path):
    scene = red_and_blue_scene(toyworld.HELD_OUT_SEED + 30_100)
    scene.image.save(tmp_path / "two.png")
    overlay, note = client.predict(handle_file(str(tmp_path / "two.png")), "red", 1.0, api_name="/heatmap")
    shown = np.asarray(Image.open(overlay).convert("RGB")).astype(float)
    from pipelines.search.heatmap import DISPLAY_SIDE, Heatmap

    assert shown.shape[:2] == (DISPLAY_SIDE, DISPLAY_SIDE) and "red" in note  # shown large, not at 64 pixels
    # At full opacity the picture is the colour scale: brighter (hotter) over the red shape than the blue one.
    brightness = shown.sum(axis=2)
    as_heat = Heatmap("", ((brightness - brightness.min()) / np.ptp(brightness)).astype(np.float32), 0, 0, 0)
    boxes = {s.color: s.box for s in scene.shapes}
    assert box_heat(as_heat, scene.image.size, boxes["red"]) > box_heat(as_heat, scene.image.size, boxes["blue"])


def _tiny(directory):
    Image.new("RGB", (1, 1), "red").save(directory / "dot.png")
    return handle_file(str(directory / "dot.png"))


@pytest.mark.parametrize(
    "make_image,question,expected",
    [
        (None, "what color is the shape?", "Upload an image"),
        ("scene", "", "Type a question"),
        ("scene", "   \n  ", "Type a question"),
        ("scene", "какого цвета фигура?", "Cyrillic script"),
        ("scene", "\n".join(["what color is it?"] * 17), "ask at most 16 at once"),
        (_tiny, "what color is the shape?", "1x1 pixels: too small"),
    ],
)
def test_bad_input_is_refused_clearly_and_the_server_keeps_serving(
    client, scenes, tmp_path, make_image, question, expected
):
    scene, path = scenes[3]
    image = handle_file(path) if make_image == "scene" else make_image(tmp_path) if make_image else None
    with pytest.raises(AppError, match=expected):
        client.predict(image, question, api_name="/ask")
    assert client.predict(handle_file(path), api_name="/ask")[0] == scene.color


@pytest.mark.parametrize("model", ["toy-blip-vqa", "toy-vilt"])
def test_a_5000_character_question_is_cut_and_still_answered(client, scenes, model):
    scene, path = scenes[3]
    question = "what color is the shape? " + "please look very carefully " * 185
    answer, _, table = client.predict(handle_file(path), question, model, api_name="/ask")
    assert answer == scene.color
    assert "(cut: the model reads" in table["data"][0][0] and len(table["data"][0][0]) < 300
