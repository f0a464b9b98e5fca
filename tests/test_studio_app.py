"""The Studio through the served app: `/studio` for a remote client, and the tab in a real browser."""

from __future__ import annotations

import pytest
from gradio_client import handle_file

import toyworld
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


QUESTION = ROOT / "assets/examples/speech/what_color_is_the_shape.wav"


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    scene = next(s for s in toyworld.scenes(50, start_seed=toyworld.HELD_OUT_SEED + 12_000) if s.color != "orange")
    path = tmp_path_factory.mktemp("studio") / "scene.png"
    scene.image.save(path)
    return scene, path


def test_studio_api_answers_a_spoken_question_about_an_image(client, scene_file):
    scene, path = scene_file
    transcript, caption, answer, heatmap, by_words, by_image, labels, early, late, notes = client.predict(
        handle_file(str(path)), handle_file(str(QUESTION)), api_name="/studio"
    )
    assert "color" in transcript.lower() and "shape" in transcript.lower()
    assert scene.shape in caption and answer["label"] == scene.color
    assert heatmap and by_words and by_image and early and late and labels["label"]
    assert "not run" not in notes


def test_studio_api_with_nothing_given_says_why_for_every_part(client):
    *_, notes = client.predict(None, None, api_name="/studio")
    assert notes.count("not run") == 7 and "No image was given" in notes and "No speech or text" in notes


def test_studio_in_the_browser_streams_every_part(page, scene_file):
    scene, path = scene_file
    page.get_by_role("tab", name="Studio", exact=True).click()
    page.locator("#studio-image input[type=file]").set_input_files(str(path))
    page.locator("#studio-text textarea").fill("what color is the shape?")
    page.get_by_role("button", name="Run everything", exact=True).click()
    page.wait_for_function("() => document.querySelector('#studio-caption textarea').value.length > 0", timeout=90_000)
    assert scene.shape in page.locator("#studio-caption textarea").input_value()
    page.locator("#studio-answer").get_by_text(scene.color).first.wait_for(timeout=60_000)
    page.locator("#studio-heatmap img").first.wait_for(timeout=30_000)
    page.locator("#studio-early img").first.wait_for(timeout=10_000)
    page.locator("#studio-late img").first.wait_for(timeout=10_000)
    assert page.locator("#studio-notes").inner_text().count("done") == 7


def test_studio_streams_each_part_as_it_is_ready(client, scene_file):
    _, path = scene_file
    job = client.submit(handle_file(str(path)), handle_file(str(QUESTION)), api_name="/studio")
    job.result()
    updates = job.outputs()
    assert len(updates) == 7  # one update per part
    first, last = updates[0], updates[-1]
    assert first[0] and not first[1] and not first[2]  # the transcript came before the caption and the answer
    assert last[1] and last[2]
