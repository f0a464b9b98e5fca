"""The Search tab in a real browser: add your own images, search them, classify an image."""

from __future__ import annotations

import numpy as np
import pytest

import toyworld
from pipelines.core import runtime
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS
from tests.serving import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    before = runtime.settings().cache_dir
    runtime.configure(cache_dir=tmp_path_factory.mktemp("cache"))
    demo = serve("toy")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(demo.local_url)
        page.get_by_role("tab", name="Search", exact=True).click()
        yield page
        browser.close()
    demo.close()
    runtime.configure(cache_dir=before)


def test_upload_my_images_then_search_them_and_classify(page, tmp_path):
    rng = np.random.default_rng(5)
    files = []
    for color, shape in [("green", "circle"), ("purple", "square")]:
        path = tmp_path / f"my_{color}_{shape}.png"
        toyworld.render([(color, shape)], rng).image.save(path)
        files.append(str(path))

    page.get_by_text("My images: search your own pictures").click()
    page.locator("#search-upload input[type=file]").set_input_files(files)
    page.get_by_role("button", name="Add to my gallery", exact=True).click()
    page.get_by_text("2 images in your gallery").wait_for(timeout=60_000)
    assert page.get_by_role("radio", name="My images").is_checked()

    page.locator("#search-query textarea").fill("a purple square")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#search-details").get_by_text("closest to").wait_for(timeout=60_000)
    first = page.locator("#search-results img").first
    first.wait_for(timeout=30_000)
    src = first.get_attribute("src") or ""
    assert "/gradio_api/file=" in src and "/images/" not in src  # a copy in Gradio's cache, never the store itself
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.element_handle())  # displayed
    assert "my purple square" in page.locator("#search-results").inner_text()

    page.locator("#classify-image input[type=file]").set_input_files(files[1])
    page.locator("#classify-image img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Classify", exact=True).click()
    page.locator("#classify-result").get_by_text("square").first.wait_for(timeout=60_000)
    assert page.locator("#classify-result").inner_text().split("\n")[1] == "square"  # the top of the toy shapes
