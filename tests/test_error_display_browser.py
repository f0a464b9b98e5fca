"""A refusal in a real browser (Debian chromium driven by Playwright): after a good result, a missing or bad input
gives one toast that opens with a clear title, the stale result is cleared, no output carries a red "Error" pill,
and an output of another event keeps what it shows; an API caller still gets the message as an exception."""

from __future__ import annotations

import logging

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import pipelines
import toyworld
from demos import caption, common
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS
from tests.serving import free_port

pytestmark = pytest.mark.browser

ERROR_PILLS = "[data-testid='status-tracker'] .error"
TOASTS = "[data-testid='toast-body']"
MISSING = "Type a word to look up"


@common.user_errors
def look_up(word: str | None):
    common.require(word, MISSING)
    if word == "zebra":
        raise pipelines.InputError("The word 'zebra' is not in this toy dictionary. Try 'circle'")
    return f"{word}: a shape", {"headers": ["word", "meaning"], "data": [[word, "a shape"]]}


def small_demo(clear: bool = True) -> gr.Blocks:
    with gr.Blocks() as demo:
        word = gr.Textbox(label="Word", elem_id="word")
        button = gr.Button("Look up")
        meaning = gr.Textbox(label="Meaning", interactive=False, elem_id="meaning")
        table = gr.Dataframe(headers=["word", "meaning"], interactive=False, elem_id="table")
        other = gr.Textbox("", label="Other", interactive=False, elem_id="other")
        other_button = gr.Button("Other")
        button.click(look_up, inputs=word, outputs=[meaning, table], api_name="look_up")
        other_button.click(lambda: "set by another event", outputs=other, api_name="other")
    if clear:
        common.clear_results_on_failure(demo)
    return demo


@pytest.fixture(scope="module")
def served():
    demo = small_demo().queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def opened(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    return page


def close_toasts(page) -> None:
    for close in page.locator("[data-testid='toast-close']").all():
        close.click()
    page.locator(TOASTS).first.wait_for(state="detached", timeout=10_000)


def test_a_missing_then_a_bad_input_clears_the_result_and_says_what_to_do(served, browser, caplog, capfd):
    page = opened(browser, served.local_url)
    page.get_by_role("button", name="Other").click()
    page.wait_for_function("() => document.querySelector('#other textarea').value.length > 0", timeout=30_000)
    page.locator("#word textarea").fill("circle")
    page.get_by_role("button", name="Look up").click()
    page.wait_for_function("() => document.querySelector('#meaning textarea').value === 'circle: a shape'")
    page.wait_for_function("() => document.querySelector('#table').innerText.includes('a shape')", timeout=10_000)

    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="demos.common"):
        page.locator("#word textarea").fill("")
        page.get_by_role("button", name="Look up").click()
        toast = page.locator(TOASTS)
        toast.wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelector('#meaning textarea').value === ''", timeout=10_000)
    assert toast.count() == 1
    text = toast.inner_text()
    assert "Missing input." in text and MISSING in text
    assert toast.locator("strong").inner_text() == "Missing input."  # the title leads the message
    assert "a shape" not in page.locator("#table").inner_text()  # the stale rows are gone, the headers stay
    assert "meaning" in page.locator("#table").inner_text()
    page.wait_for_timeout(500)  # a pill would show as the error arrives; the reset has answered by now
    assert page.locator(ERROR_PILLS).count() == 0
    assert page.locator("#other textarea").input_value() == "set by another event"  # another event's output
    logged = [r.getMessage() for r in caplog.records if r.name == "demos.common"]
    assert len(logged) == 1 and MISSING in logged[0]
    assert "Traceback" not in capfd.readouterr().err
    close_toasts(page)

    # A refusal from deeper in (the pipeline's InputError) after a good result: the same.
    page.locator("#word textarea").fill("square")
    page.get_by_role("button", name="Look up").click()
    page.wait_for_function("() => document.querySelector('#meaning textarea').value === 'square: a shape'")
    page.locator("#word textarea").fill("zebra")
    page.get_by_role("button", name="Look up").click()
    page.locator(TOASTS).wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#meaning textarea').value === ''", timeout=10_000)
    text = page.locator(TOASTS).inner_text()
    assert "Cannot use this input." in text and "not in this toy dictionary" in text
    assert "a shape" not in page.locator("#table").inner_text()
    page.wait_for_timeout(500)
    assert page.locator(ERROR_PILLS).count() == 0
    page.close()


def test_without_the_clearing_gradio_keeps_the_stale_result_under_red_pills(browser):
    """The control for the tests above: their selectors see Gradio's pills and stale rows when they are there."""
    demo = small_demo(clear=False).queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        page = opened(browser, demo.local_url)
        page.locator("#word textarea").fill("circle")
        page.get_by_role("button", name="Look up").click()
        page.wait_for_function("() => document.querySelector('#meaning textarea').value === 'circle: a shape'")
        page.locator("#word textarea").fill("zebra")
        page.get_by_role("button", name="Look up").click()
        page.locator(ERROR_PILLS).first.wait_for(timeout=30_000)
        assert "a shape" in page.locator("#table").inner_text()
        page.close()
    finally:
        demo.close()


def test_an_api_caller_still_gets_the_message_as_an_exception(served):
    client = Client(served.local_url, verbose=False)
    with pytest.raises(AppError, match=MISSING) as info:
        client.predict("", api_name="/look_up")
    assert str(info.value) == MISSING  # the text as before, no markup
    with pytest.raises(AppError, match="not in this toy dictionary"):
        client.predict("zebra", api_name="/look_up")
    assert client.predict("circle", api_name="/look_up")[0] == "circle: a shape"
    assert "clear_results" not in client.view_api(return_format="str", print_info=False)  # not an endpoint


def test_installing_twice_clears_each_result_once():
    demo = small_demo()
    events = len(demo.fns)
    common.clear_results_on_failure(demo)
    assert len(demo.fns) == events  # a second reset would answer twice and race the first


@pytest.fixture(scope="module")
def caption_tab():
    """The real Caption tab, served alone with the mechanism installed as app.py installs it."""
    with gr.Blocks() as demo:
        caption.build()
    common.clear_results_on_failure(demo)
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


def test_caption_clicked_without_an_image_clears_the_last_caption(caption_tab, browser, tmp_path):
    [scene] = toyworld.scenes(1, start_seed=toyworld.HELD_OUT_SEED + 7400)
    scene.image.save(tmp_path / "shape.png")
    page = opened(browser, caption_tab.local_url)
    page.locator("#caption-image input[type=file]").set_input_files(str(tmp_path / "shape.png"))
    page.get_by_role("button", name="Caption", exact=True).click()
    page.wait_for_function("() => document.querySelector('#caption-text textarea').value.length > 0", timeout=60_000)
    assert scene.shape in page.locator("#caption-text textarea").input_value()
    page.locator("#caption-bars").get_by_text(scene.shape).first.wait_for(timeout=30_000)  # the bars, shown

    page.locator("#caption-image").get_by_role("button", name="Remove Image").click()
    page.locator("#caption-image img").wait_for(state="detached", timeout=10_000)
    page.get_by_role("button", name="Caption", exact=True).click()
    toast = page.locator(TOASTS)
    toast.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#caption-text textarea').value === ''", timeout=10_000)
    assert toast.count() == 1
    assert "Missing input." in toast.inner_text() and "Upload an image" in toast.inner_text()
    page.wait_for_function(  # the bars of the last caption go too (a failure hook of their own)
        f"() => !document.querySelector('#caption-bars').innerText.includes('{scene.shape}')", timeout=10_000
    )
    assert scene.shape not in page.locator("#caption-candidates").inner_text()
    page.wait_for_timeout(500)
    assert page.locator(ERROR_PILLS).count() == 0
    page.close()
