"""The Caption tab in a real browser (Debian chromium driven by Playwright): candidates, sampling, many images."""

from __future__ import annotations

import pytest

import toyworld
from demos import examples

pytestmark = pytest.mark.browser


def caption_for(scene: toyworld.Scene) -> str:
    return toyworld.caption_for(scene.color, scene.shape)


# The right edge of the visible innermost element of ``selector`` whose text has ``text`` (0 if none).
RIGHT_EDGE = """([selector, text]) => Math.max(0, ...[...document.querySelectorAll(selector + ' *')]
    .filter(e => e.children.length === 0 && e.innerText && e.innerText.includes(text) && e.offsetParent !== null)
    .map(e => e.getBoundingClientRect().right))"""
SHOWS = "([selector, text]) => document.querySelector(selector).innerText.includes(text)"  # visible text only


def test_candidates_sampling_controls_and_a_batch_with_downloads(page, tmp_path):
    scenes = toyworld.scenes(2, start_seed=toyworld.HELD_OUT_SEED + 7300)
    paths = []
    for index, scene in enumerate(scenes):
        paths.append(tmp_path / f"shape{index}.png")
        scene.image.save(paths[-1])
    page.get_by_role("tab", name="Caption", exact=True).click()
    page.get_by_role("tab", name="One image", exact=True).click()
    page.locator("#caption-image input[type=file]").set_input_files(str(paths[0]))
    page.get_by_role("button", name="Caption", exact=True).click()
    page.wait_for_function("() => document.querySelector('#caption-text textarea').value.length > 0", timeout=60_000)
    best = page.locator("#caption-text textarea").input_value()
    assert scenes[0].color in best and scenes[0].shape in best
    page.locator("#caption-bars").get_by_text(best).first.wait_for(timeout=10_000)  # the candidates as bars
    page.get_by_text("Scores in detail", exact=True).click()  # and their three scores in a table
    candidates = page.locator("#caption-candidates")
    candidates.get_by_text("CLIP similarity").first.wait_for(timeout=10_000)
    assert best in candidates.inner_text()

    page.locator("#caption-options").get_by_text("Options", exact=True).click()
    seed = page.locator("#caption-seed")
    assert not seed.is_visible()  # sampling controls show only for sampling
    page.locator("#caption-decoding").get_by_text("sampling", exact=True).click()
    seed.wait_for(state="visible", timeout=10_000)

    page.get_by_role("tab", name="Several images", exact=True).click()
    page.locator("#caption-files input[type=file]").set_input_files([str(p) for p in paths])
    page.get_by_role("button", name="Caption all", exact=True).click()
    table = page.locator("#caption-batch")
    page.wait_for_function(SHOWS, arg=["#caption-batch", "shape1.png"], timeout=60_000)
    text = table.inner_text()
    assert text.index("shape0.png") < text.index("shape1.png")
    assert all(s.shape in text for s in scenes)
    for suffix in (".csv", ".json"):
        page.locator("#caption-downloads").get_by_text(suffix).first.wait_for(timeout=10_000)


def test_a_photo_gets_the_toy_note_and_bars_and_a_toy_scene_gets_no_note(page, tmp_path):
    photo = next(p for p in examples.photos() if p.endswith("cat.jpg"))
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 7400)
    scene.image.save(tmp_path / "scene.png")
    page.get_by_role("tab", name="Caption", exact=True).click()
    page.get_by_role("tab", name="One image", exact=True).click()
    assert "CLIP re-ranks them" in page.locator("#caption-about").inner_text()  # what the tab does, on top
    page.locator("#caption-image input[type=file]").set_input_files(photo)
    page.get_by_role("button", name="Caption", exact=True).click()
    note = page.locator("#caption-note")
    note.get_by_text("toy model that knows only coloured shapes").wait_for(timeout=60_000)
    best = page.locator("#caption-text textarea").input_value()
    page.locator("#caption-bars").get_by_text(best).first.wait_for(timeout=10_000)  # the candidates as bars

    page.locator("#caption-image input[type=file]").set_input_files(str(tmp_path / "scene.png"))
    note.wait_for(state="hidden", timeout=10_000)  # another image: the last note goes
    page.get_by_role("button", name="Caption", exact=True).click()
    page.wait_for_function(
        "(best) => document.querySelector('#caption-text textarea').value !== best", arg=best, timeout=60_000
    )
    best = page.locator("#caption-text textarea").input_value()
    assert scene.color in best and scene.shape in best
    page.locator("#caption-bars").get_by_text(best).first.wait_for(timeout=10_000)
    shown = note.inner_text() if note.is_visible() else ""
    assert "toy model" not in shown  # (a note on merged candidates may show)


def test_a_batch_shows_thumbnails_with_captions_and_the_problem_column_in_view(page, tmp_path):
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 7500)
    scene.image.save(tmp_path / "scene.png")
    (tmp_path / "notes.txt").write_text("not an image")
    photo = next(p for p in examples.photos() if p.endswith("astronaut.jpg"))
    page.get_by_role("tab", name="Caption", exact=True).click()
    page.get_by_role("tab", name="Several images", exact=True).click()
    files = [str(tmp_path / "scene.png"), photo, str(tmp_path / "notes.txt")]
    page.locator("#caption-files input[type=file]").set_input_files(files)
    page.get_by_role("button", name="Caption all", exact=True).click()
    table = page.locator("#caption-batch")
    page.wait_for_function(SHOWS, arg=["#caption-batch", "notes.txt"], timeout=60_000)
    gallery = page.locator("#caption-batch-gallery")
    gallery.locator("img").first.wait_for(timeout=30_000)
    page.wait_for_function(SHOWS, arg=["#caption-batch-gallery", "astronaut.jpg: "], timeout=30_000)
    shown = gallery.inner_text()  # thumbnails of the two images with their captions, not the text file
    assert f"scene.png: {caption_for(scene)}" in shown and "notes.txt" not in shown
    page.locator("#caption-batch-note").get_by_text("toy model that knows only coloured shapes").wait_for(
        timeout=10_000
    )
    width = page.viewport_size["width"]
    box = table.locator("th[title='problem']:visible").first.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width  # in view, not off to the right
    for name in ("file", "caption", "problem"):  # each word of a header on one line, not wrapped letter by letter
        words = table.locator(f"th[title='{name}']:visible span.header").first
        assert words.evaluate("span => span.getClientRects().length") == 1, name
    right = page.evaluate(RIGHT_EDGE, ["#caption-batch", "not an image"])
    assert 0 < right <= width  # the reason wraps in view
