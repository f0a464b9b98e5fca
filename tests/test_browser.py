"""A person's path through the app in a real browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import pytest

import toyworld

pytestmark = pytest.mark.browser


def test_caption_an_uploaded_scene(page, tmp_path):
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 21)
    scene.image.save(tmp_path / "scene.png")
    page.get_by_role("tab", name="Caption", exact=True).click()
    page.locator("#caption-image input[type=file]").set_input_files(str(tmp_path / "scene.png"))
    page.get_by_role("button", name="Caption", exact=True).click()
    caption = page.locator("#caption-text textarea")
    caption.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#caption-text textarea').value.length > 0", timeout=60_000)
    text = caption.input_value()
    assert scene.color in text and scene.shape in text


def test_search_shows_the_matching_scene_first(page):
    page.get_by_role("tab", name="Search", exact=True).click()
    page.locator("#search-query textarea").fill("a yellow square")
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator("#search-results img").first
    first.wait_for(timeout=60_000)
    assert "yellow_square" in (first.get_attribute("src") or "")


def test_a_bad_upload_shows_our_message(page, tmp_path):
    (tmp_path / "notes.png").write_text("meeting notes, not an image\n" * 10)
    page.get_by_role("tab", name="Caption", exact=True).click()
    page.locator("#caption-image input[type=file]").set_input_files(str(tmp_path / "notes.png"))
    page.get_by_role("button", name="Caption", exact=True).click()
    page.get_by_text("This file is not an image").first.wait_for(timeout=30_000)
