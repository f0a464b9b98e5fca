"""The page on a laptop and on a phone (Chromium, Playwright): Studio's and Search's examples are on the first screen
of a 1280×800 laptop and a Studio example runs on a click; at 390×844 no tab scrolls sideways; table headers break
between words, not letters."""

from __future__ import annotations

import pytest

from tests.conftest import CHROMIUM, CHROMIUM_FLAGS, ROOT
from tests.private_app import served_alone

pytestmark = pytest.mark.browser

TABS = ["Studio", "Caption", "Search", "Ask", "Chat", "Transcribe", "System"]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_alone(tmp_path_factory.mktemp("app")) as demo:
        yield demo


@pytest.fixture
def default_app(tmp_path):
    """The default profile on this machine: its models not downloaded, so each tab shows what to download. For one
    test only: Gradio's cache folder is one per process, and the toy app's tests need theirs back."""
    with served_alone(tmp_path, profile="default") as demo:
        yield demo


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_page(browser, app, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(app.local_url)
    page.get_by_role("tab", name="Studio", exact=True).wait_for()
    return page


def open_tab(page, name: str) -> None:
    """Clicks a tab, from the "more" menu where the screen is too narrow to show it."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.is_visible():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button").get_by_text(name, exact=True).click()
    page.wait_for_function(
        "name => [...document.querySelectorAll('[role=tab]')].some(t => t.textContent.trim() === name "
        "&& t.getAttribute('aria-selected') === 'true')",
        arg=name,
    )


def bottom(page, selector: str) -> float:
    """How far down the page (px, from its top) the element ends, once it is shown."""
    element = page.locator(selector)
    element.locator("img, button").first.wait_for(state="visible", timeout=30_000)
    box = element.bounding_box()
    return box["y"] + box["height"]


@pytest.mark.parametrize(
    "tab,examples",
    [
        ("Studio", "#studio-examples"),
        ("Search", "#search-query-examples"),
        ("Search", "#search-image-examples"),
        ("Ask", "#ask-image-examples"),
        ("Ask", "#ask-question-examples"),
        ("Caption", "#caption-examples"),
        ("Chat", "#chat-examples"),
        ("Transcribe", "#transcribe-examples"),
    ],
)
@pytest.mark.parametrize("profile", ["toy", "default"])
def test_examples_are_on_a_laptops_first_screen(browser, request, profile, tab, examples):
    page = open_page(browser, request.getfixturevalue("app" if profile == "toy" else "default_app"), LAPTOP)
    open_tab(page, tab)
    assert bottom(page, examples) <= LAPTOP["height"]
    page.close()


def test_each_tab_opens_with_what_it_does(browser, app):
    page = open_page(browser, app, LAPTOP)
    for tab, words in [("Studio", "every model answers"), ("Search", "Find images by words")]:
        open_tab(page, tab)
        about = page.locator(".block.tab-about").filter(has_text=words)
        about.wait_for()
        assert about.bounding_box()["y"] < 250  # the first thing under the tabs
    page.close()


def test_no_tab_scrolls_sideways_on_a_phone(browser, app):
    page = open_page(browser, app, PHONE)
    for tab in TABS:
        open_tab(page, tab)
        page.wait_for_timeout(300)  # the tab's layout settles
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{tab} is {width} px wide"
    page.close()


def test_results_and_tables_fit_a_phone(browser, app):
    page = open_page(browser, app, PHONE)
    open_tab(page, "Search")
    page.locator("#search-query-examples").get_by_text("a red circle", exact=True).click()
    page.locator("#search-results img").first.wait_for(timeout=90_000)
    caption = page.locator("#search-results .caption-label").first
    assert caption.evaluate("e => e.scrollWidth <= e.clientWidth")  # the label and score are shown whole
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    open_tab(page, "Transcribe")
    audio = ROOT / "assets/examples/speech/ask_not_what_your_country_can_do_for_you.wav"
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(audio))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    header = page.locator("#transcript-segments th").first
    header.wait_for(timeout=120_000)
    page.wait_for_timeout(500)  # Gradio sizes the columns after they are shown
    # "start (s)" breaks between its words: no line of it is narrower than the word "start"
    lines = header.locator(".header").evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; }"
    )
    assert lines <= 2
    text = page.locator("#transcript-segments .body-cell").filter(has_text="country").first
    assert text.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # the segment's text wraps, not cut
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.close()


def test_a_studio_example_runs_on_a_click(browser, app):
    page = open_page(browser, app, LAPTOP)
    page.locator("#studio-examples button.gallery-item").first.click()  # a red circle, asked its colour aloud
    page.wait_for_function("() => document.querySelector('#studio-caption textarea').value.length > 0", timeout=120_000)
    assert "circle" in page.locator("#studio-caption textarea").input_value()
    page.locator("#studio-answer").get_by_text("red").first.wait_for(timeout=90_000)
    transcript = page.locator("#studio-transcript textarea").input_value().lower()
    assert "color" in transcript and "shape" in transcript
    page.close()


def test_an_ask_example_image_is_asked_the_question_on_a_click(browser, app):
    page = open_page(browser, app, LAPTOP)
    open_tab(page, "Ask")
    page.locator("#ask-question-examples").get_by_text("what shape is it?", exact=True).click()
    page.locator("#ask-image-examples button.gallery-item").nth(1).click()  # a blue triangle (toy examples, sorted)
    page.wait_for_function("() => document.querySelector('#ask-answer textarea').value.length > 0", timeout=120_000)
    assert page.locator("#ask-answer textarea").input_value() == "triangle"
    page.close()


def test_a_caption_example_is_captioned_on_a_click(browser, app):
    page = open_page(browser, app, LAPTOP)
    open_tab(page, "Caption")
    page.locator("#caption-examples button.gallery-item").first.click()  # a blue circle (toy examples, sorted)
    page.wait_for_function("() => document.querySelector('#caption-text textarea').value.length > 0", timeout=120_000)
    caption = page.locator("#caption-text textarea").input_value()
    assert "blue" in caption and "circle" in caption
    page.close()


def test_a_transcribe_example_is_transcribed_on_a_click(browser, app):
    page = open_page(browser, app, LAPTOP)
    open_tab(page, "Transcribe")
    page.locator("#transcribe-examples").get_by_text("what_color_is_the_shape.wav").click()
    page.wait_for_function("() => document.querySelector('#transcript textarea').value.length > 0", timeout=120_000)
    assert "what color is the shape" in page.locator("#transcript textarea").input_value().lower()
    page.close()
