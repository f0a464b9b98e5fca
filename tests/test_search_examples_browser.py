"""Search acts on a click (Chromium, Playwright): an example chip runs its search, and "Search images by what was
said" in Transcribe opens Search with the words searched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, ROOT
from tests.private_app import served_alone

pytestmark = pytest.mark.browser

SPOKEN = ROOT / "assets/examples/speech/a_red_circle_on_a_white_background.wav"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A person's browser on a toy app of this module's own."""
    from playwright.sync_api import sync_playwright

    with served_alone(tmp_path_factory.mktemp("app")) as demo, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(demo.local_url)
        yield page
        browser.close()


def first_result(page) -> str:
    """The file name of the first image Search shows, once it shows one."""
    first = page.locator("#search-results img").first
    first.wait_for(timeout=90_000)
    return Path((first.get_attribute("src") or "").split("?")[0]).name


def test_an_example_query_chip_runs_its_search(page):
    page.get_by_role("tab", name="Search", exact=True).click()
    page.locator("#search-query-examples").get_by_text("a blue triangle", exact=True).click()
    page.locator("#search-details").get_by_text("a blue triangle").wait_for(timeout=90_000)
    assert page.locator("#search-query textarea").input_value() == "a blue triangle"
    assert first_result(page).startswith("blue_triangle")


def test_an_example_image_finds_similar_ones_and_is_classified(page):
    page.get_by_role("tab", name="Search", exact=True).click()
    page.locator("#search-image-examples button.gallery-item").nth(8).click()  # red_circle.png among the toy scenes
    page.locator("#search-details").get_by_text("closest to").wait_for(timeout=90_000)
    page.wait_for_function(
        "() => (document.querySelector('#search-results img')?.src || '').includes('red_circle')", timeout=90_000
    )
    page.locator("#classify-examples button.gallery-item").nth(8).click()
    page.locator("#classify-result").get_by_text("circle").first.wait_for(timeout=90_000)
    assert page.locator("#classify-result").inner_text().split("\n")[1] == "circle"  # the top of the toy shapes


def test_search_images_by_what_was_said_runs_the_search(page):
    page.get_by_role("tab", name="Transcribe", exact=True).click()
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(SPOKEN))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    page.wait_for_function("() => document.querySelector('#transcript textarea').value.length > 0", timeout=90_000)
    said = page.locator("#transcript textarea").input_value()
    assert "red circle" in said.lower()

    page.get_by_role("button", name="Search images by what was said").click()
    words = said.strip().rstrip(".").lower()
    page.wait_for_function(  # this search's details, not an earlier test's left on the shared page
        "words => document.querySelector('#search-details').innerText.toLowerCase().includes(words)",
        arg=words,
        timeout=90_000,
    )
    assert page.get_by_role("tab", name="Search", exact=True).get_attribute("aria-selected") == "true"
    assert page.locator("#search-query textarea").input_value() == said
    assert said.strip().rstrip(".").lower() in page.locator("#search-details").inner_text().lower()
    assert first_result(page).startswith("red_circle")
