"""The Chat tab in a real browser (Debian chromium driven by Playwright): an example streams its answer, a follow-up
continues the chat from its cache, a spoken message (uploaded or recorded with the microphone) is transcribed into
the chat and answered, Stop stops, a photo asked of a toy model gets the toy note."""

from __future__ import annotations

import threading

import pytest

import pipelines
import toyworld
from demos import examples
from tests.conftest import CHROMIUM, CHROMIUM_FLAGS
from tests.test_chat_app import HOLD, LONG, settled, untrained_dir  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

BOT = "#chat-chatbot [data-testid='bot']"
USER = "#chat-chatbot [data-testid='user']"
LAPTOP_HEIGHT = 800  # pixels of a laptop's first screen


def open_chat(page) -> None:
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.locator("#chat-message textarea").wait_for(timeout=10_000)


def answers(page) -> list[str]:
    return [text.strip() for text in page.locator(BOT).all_inner_texts()]


def wait_for_answers(page, count: int, note: str) -> None:
    """Until the chat holds ``count`` answers and the note under it says ``note`` (the last answer is done)."""
    page.wait_for_function(
        "([selector, count]) => document.querySelectorAll(selector).length >= count",
        arg=[BOT, count],
        timeout=60_000,
    )
    page.locator("#chat-note").get_by_text(note).wait_for(timeout=60_000)


@pytest.fixture
def held_after():
    """hold(model, step): that chat model's decoding (None: the profile's) held at its ``step``-th forward pass
    until ``go`` is set; returns (the model, steps so far, reached, go)."""

    def hold(model: str | None, step: int):
        chat = pipelines.load("chat", model)  # the server (this process) uses the same one
        steps, reached, go = [], threading.Event(), threading.Event()

        def pause(module, args, output):
            steps.append(1)
            if len(steps) == step:
                reached.set()
                go.wait(HOLD)

        hooks.append((chat.model.model.text_model.register_forward_hook(pause), go))
        return chat, steps, reached, go

    hooks: list = []
    yield hold
    for hook, go in hooks:
        go.set()
        hook.remove()


def test_an_example_streams_its_answer_and_a_follow_up_continues_the_chat(page, held_after):
    page.reload()
    open_chat(page)
    example = page.locator("#chat-examples tr.tr-body").first  # a red circle: "Describe this image."
    box = example.bounding_box()
    assert box["y"] + box["height"] <= LAPTOP_HEIGHT  # on a laptop's first screen
    _, _, reached, go = held_after(None, 4)  # the prompt and three words of the answer
    example.click()
    assert reached.wait(HOLD), "the answer never started"
    # Streamed: part of the answer is on the page while the model is still writing the rest.
    page.wait_for_function("(selector) => document.querySelector(selector)?.innerText.trim()", arg=BOT)
    partial = answers(page)[-1]
    go.set()
    wait_for_answers(page, 1, "image encoded")
    [answer] = answers(page)
    assert answer.startswith("The image shows") and "red" in answer
    assert answer.startswith(partial) and len(answer) > len(partial)
    assert "1 image encoded" in page.locator("#chat-note").inner_text()

    page.locator("#chat-follow-ups button.gallery-item").first.click()  # "What color is the shape?"
    wait_for_answers(page, 2, "from this chat's cache")
    assert answers(page)[-1] == "red"
    assert "no image encoded" in page.locator("#chat-note").inner_text()
    assert page.locator(USER).filter(has_text="What color is the shape?").count() == 1


def test_a_spoken_message_is_shown_as_text_and_answered(page, speak, tmp_path):
    page.reload()
    open_chat(page)
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 61_000)
    scene.image.save(tmp_path / "scene.png")
    page.locator("#chat-new").click()
    page.locator("#chat-message input[type=file]").set_input_files(
        [str(tmp_path / "scene.png"), str(speak("what color is the shape"))]
    )
    page.locator("#chat-message textarea").press("Enter")
    wait_for_answers(page, 1, "image encoded")
    said = page.locator(USER).last.inner_text().lower()
    assert "color" in said and "shape" in said  # the transcript, shown as the user's words
    assert answers(page) == [scene.color]


def test_stop_ends_the_answer_and_says_so(page, held_after, untrained_dir, tmp_path):  # noqa: F811
    page.reload()
    open_chat(page)
    toyworld.scene(toyworld.HELD_OUT_SEED + 61_001).image.save(tmp_path / "scene.png")
    page.locator("button:visible", has_text="Options").first.click()
    model = page.get_by_label("Model").locator("visible=true").first
    model.fill(untrained_dir)  # an untrained model: its answers never end on their own
    model.press("Enter")
    length = page.locator("#chat-options input[type=number]").first
    length.fill(str(LONG))
    length.press("Enter")
    chat, steps, reached, go = held_after(untrained_dir, 6)
    chat.forget()
    page.locator("#chat-message input[type=file]").set_input_files(str(tmp_path / "scene.png"))
    page.locator("#chat-message textarea").fill("Describe this image.")
    page.locator("#chat-message textarea").press("Enter")
    assert reached.wait(HOLD), "the answer never started"
    page.locator("#chat-stop").click()
    page.locator("#chat-note").get_by_text("Stopped: you pressed Stop").wait_for(timeout=30_000)
    go.set()
    assert settled(steps, chat) <= 8  # the step under way, and at most one more: not the 512 asked for
    page.locator("#chat-message textarea").fill("Go on.")  # the page takes the next message at once
    assert page.locator("#chat-message textarea").input_value() == "Go on."


def test_a_toy_model_answering_about_a_photo_says_it_knows_only_shapes(page):
    page.reload()
    open_chat(page)
    photo = next(path for path in examples.photos() if path.endswith("cat.jpg"))
    page.locator("#chat-message input[type=file]").set_input_files(photo)
    page.locator("#chat-message textarea").fill("Describe this image.")
    page.locator("#chat-message textarea").press("Enter")
    wait_for_answers(page, 1, "image encoded")
    assert "toy model that knows only coloured shapes" in page.locator("#chat-note").inner_text()
    # A toy scene in a new chat: no such note.
    page.locator("#chat-new").click()
    page.wait_for_function("(selector) => document.querySelectorAll(selector).length === 0", arg=BOT)
    page.locator("#chat-note").wait_for(state="hidden")
    page.locator("#chat-examples tr.tr-body").first.click()
    wait_for_answers(page, 1, "image encoded")
    assert "toy model" not in page.locator("#chat-note").inner_text()


def test_a_message_recorded_with_the_microphone_is_transcribed_and_answered(page, speak, tmp_path):
    # Chromium's fake microphone plays a recording of the question (over and over) into the message box's recorder.
    spoken = speak("what color is the shape")
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 61_002)
    scene.image.save(tmp_path / "scene.png")
    microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken}",
    ]
    browser = page.context.browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + microphone)
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"])
        tab = context.new_page()
        tab.goto(page.url)
        open_chat(tab)
        box = tab.locator("#chat-message")
        box.locator("input[type=file]").set_input_files(str(tmp_path / "scene.png"))
        box.locator("button[aria-label='Record audio']").click()
        box.locator("button[aria-label='Start recording']").click()
        tab.wait_for_timeout(2500)  # the question, spoken once or more
        box.locator("button[aria-label='Stop recording']").click()
        box.locator("button[aria-label='Attach audio']").click()
        box.locator("button[aria-label='Submit']").click()
        wait_for_answers(tab, 1, "image encoded")
        said = tab.locator(USER).last.inner_text().lower()
        assert "color" in said and "shape" in said  # the transcript, shown as the user's words
        assert answers(tab) == [scene.color]
    finally:
        browser.close()
