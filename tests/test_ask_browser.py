"""The Ask tab in a real browser (Debian chromium driven by Playwright): two questions, ranked answers, heat map."""

from __future__ import annotations

import pytest

import toyworld
from demos import examples

pytestmark = pytest.mark.browser


def test_two_questions_give_ranked_answers_a_table_and_a_heatmap_of_this_image(page, tmp_path):
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 40_000)
    scene.image.save(tmp_path / "scene.png")
    page.get_by_role("tab", name="Ask", exact=True).click()
    page.locator("#ask-image input[type=file]").set_input_files(str(tmp_path / "scene.png"))
    page.locator("#ask-question textarea").fill("what color is the shape?\nwhat shape is it?")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.wait_for_function("() => document.querySelector('#ask-answer textarea').value.includes('\\n')", timeout=60_000)
    assert page.locator("#ask-answer textarea").input_value().splitlines() == [scene.color, scene.shape]
    page.locator("#ask-ranked").get_by_text(scene.color).first.wait_for(timeout=10_000)
    page.locator("#ask-table").get_by_text("what shape is it?").first.wait_for(timeout=10_000)
    # The heat map follows on its own, for the first answer.
    page.locator("#ask-heatmap img").first.wait_for(timeout=60_000)
    assert page.locator("#ask-heat-for textarea").input_value() == scene.color
    # Another image: the heat map of the last one goes away (it would mislead, and re-blend over the new image).
    other = toyworld.scene(toyworld.HELD_OUT_SEED + 40_001)
    other.image.save(tmp_path / "other.png")
    page.locator("#ask-image input[type=file]").set_input_files(str(tmp_path / "other.png"))
    page.locator("#ask-heatmap img").first.wait_for(state="detached", timeout=30_000)


def test_a_photo_gets_the_toy_note_and_the_heat_map_is_shown_large_with_its_legend(page, tmp_path):
    photo = next(p for p in examples.photos() if p.endswith("cat.jpg"))
    page.get_by_role("tab", name="Ask", exact=True).click()
    assert "heat map" in page.locator("#ask-about").inner_text()  # what the tab does, on top
    page.locator("#ask-image input[type=file]").set_input_files(photo)
    page.locator("#ask-question textarea").fill("is it a cat or a dog?")
    page.get_by_role("button", name="Ask", exact=True).click()
    note = page.locator("#ask-note")
    note.get_by_text("toy model that knows only coloured shapes").wait_for(timeout=60_000)
    heat = page.locator("#ask-heatmap img").first
    heat.wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('#ask-heatmap img').naturalWidth > 0", timeout=30_000)
    assert heat.evaluate("img => img.naturalWidth") == 512  # scaled up to its display size, not 64 pixels
    assert heat.bounding_box()["width"] >= 300
    legend = page.locator("#ask-heat-legend")
    assert legend.is_visible() and "Brighter = the region matches the words more" in legend.inner_text()
    assert "low" in legend.inner_text() and "high" in legend.inner_text()


def test_a_toy_scene_gets_no_toy_note_and_a_large_heat_map(page, tmp_path):
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 40_100)
    scene.image.save(tmp_path / "scene.png")
    page.get_by_role("tab", name="Ask", exact=True).click()
    page.locator("#ask-image input[type=file]").set_input_files(str(tmp_path / "scene.png"))
    page.locator("#ask-question textarea").fill("what color is the shape?")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.wait_for_function(
        "(color) => document.querySelector('#ask-answer textarea').value === color", arg=scene.color, timeout=60_000
    )
    page.locator("#ask-heatmap img").first.wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('#ask-heatmap img').naturalWidth > 0", timeout=30_000)
    assert page.locator("#ask-heatmap img").first.bounding_box()["width"] >= 300  # not a 64-pixel stamp
    assert not page.locator("#ask-note").is_visible()
