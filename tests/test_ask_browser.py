"""The Ask tab in a real browser (Debian chromium driven by Playwright): two questions, ranked answers, heat map."""

from __future__ import annotations

import pytest

import toyworld

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
