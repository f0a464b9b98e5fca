"""What the Caption tab says beside its result: merged candidates, toy models on photos, bars, no glued words."""

from __future__ import annotations

import pytest

import pipelines
import toyworld
from demos import caption as tab
from demos import examples
from demos.toy_note import TOY_NOTE
from pipelines.core import limits

WORDS = set(toyworld.vocabulary())


@pytest.fixture(autouse=True)
def every_image_in_one_call(monkeypatch):
    monkeypatch.setenv(limits.IMAGES_ENV, "1000")


def test_fewer_distinct_candidates_than_asked_are_explained():
    assert tab.merged_note(3, 3) == ""
    assert tab.merged_note(1, 3, sampled=True).startswith("2 of 3 candidates were identical and merged: 1 distinct")
    assert "temperature" in tab.merged_note(1, 3, sampled=True)
    assert tab.merged_note(2, 3).startswith("1 of 3 candidates was identical and merged: 2 distinct captions are")


def test_sampling_three_captions_of_a_plain_scene_says_they_were_merged(tmp_path):
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 60_000)
    scene.image.save(tmp_path / "scene.png")
    controls = tab.Controls(model="toy-vit-gpt2", decoding=tab.SAMPLING, candidates=3.0, temperature=0.3, seed=1)
    best, table = tab.caption(str(tmp_path / "scene.png"), controls)
    assert scene.color in best and scene.shape in best
    bars, note = tab.caption_views(str(tmp_path / "scene.png"), "toy-vit-gpt2", tab.SAMPLING, 3.0, table)
    distinct = len(table["data"])
    assert distinct < 3  # the toy model is sure of a plain scene: its samples agree
    assert note["visible"] and note["value"].startswith(f"{3 - distinct} of 3 candidates")
    assert list(bars) == [row[0] for row in table["data"]] and bars[best] == max(bars.values())


def test_a_toy_captioner_on_a_photo_gets_the_note_and_on_a_scene_does_not(tmp_path):
    photo = next(p for p in examples.photos() if p.endswith("astronaut.jpg"))
    _, table = tab.caption(photo, tab.Controls(model="toy-blip"))
    _, note = tab.caption_views(photo, "toy-blip", tab.BEAM_SEARCH, 3.0, table)
    assert note["visible"] and TOY_NOTE in note["value"]
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 60_001)
    scene.image.save(tmp_path / "scene.png")
    _, table = tab.caption(str(tmp_path / "scene.png"), tab.Controls(model="toy-blip"))
    _, note = tab.caption_views(str(tmp_path / "scene.png"), "toy-blip", tab.BEAM_SEARCH, 3.0, table)
    assert not note["visible"] and note["value"] == ""


def test_vit_gpt2_never_glues_a_second_caption_to_the_first():
    # A beam that should have ended used to start a new caption with its spaceless first word: "a greena green".
    images = [s.image for s in toyworld.scenes(16, start_seed=toyworld.HELD_OUT_SEED)] + examples.photos()
    captioner = pipelines.load("caption", "toy-vit-gpt2")
    glued = [
        candidate.text
        for result in captioner(images, num_candidates=3)
        for candidate in result.candidates
        if not set(candidate.text.split()) <= WORDS
    ]
    assert glued == []
