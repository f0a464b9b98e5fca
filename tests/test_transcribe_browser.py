"""The Transcribe tab in a real browser (Debian chromium driven by Playwright): speak, read, search by it."""

from __future__ import annotations

import pytest

from tests import speech_setups
from tests.transcribe_checks import missing

pytestmark = pytest.mark.browser


def test_a_transcript_shows_its_segments_and_files_and_searches_the_gallery(page, speak):
    page.get_by_role("tab", name="Transcribe", exact=True).click()
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(speak("show me a photo of a cat")))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    page.wait_for_function("() => document.querySelector('#transcript textarea').value.length > 0", timeout=60_000)
    text = page.locator("#transcript textarea").input_value()
    assert not missing({"photo", "cat"}, text)
    assert not missing({"photo", "cat"}, page.locator("#transcript-segments").inner_text())
    for suffix in (".srt", ".vtt", ".txt"):
        page.locator("#transcript-files").get_by_text(suffix).first.wait_for(timeout=10_000)

    page.get_by_role("button", name="Search images by what was said").click()
    query = page.locator("#search-query textarea")
    query.wait_for(state="visible", timeout=10_000)
    assert query.input_value() == text


say, hub_out_of_reach = speech_setups.say, speech_setups.hub_out_of_reach  # fixtures


def test_a_stand_in_model_is_named_next_to_the_result_and_segments_are_readable(page, say, hub_out_of_reach):
    page.reload()  # a fresh page: no recording from an earlier test in the audio box
    page.get_by_role("tab", name="Transcribe", exact=True).click()
    page.locator("button:visible", has_text="Options").first.click()
    model = page.get_by_label("Model").locator("visible=true").first
    model.fill("whisper-small")
    model.press("Enter")
    sentence = "the museum opens at nine in the morning and closes at six in the evening, every day of the week"
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(say(sentence)))
    page.get_by_role("button", name="Transcribe", exact=True).click()

    note = page.locator("#transcript-details")
    note.get_by_text("ran instead of whisper-small").wait_for(timeout=60_000)
    assert "whisper-tiny.en-embedded ran instead of whisper-small" in note.inner_text()
    assert "knows only English" in note.inner_text()
    page.wait_for_function("() => document.querySelector('#transcript textarea').value.length > 0", timeout=30_000)
    # next to the result: right above the transcript, in its column
    shown, transcript = note.bounding_box(), page.locator("#transcript").bounding_box()
    assert abs(shown["x"] - transcript["x"]) < 20 and 0 <= transcript["y"] - (shown["y"] + shown["height"]) < 60
    assert "English (this model knows only English)" in note.inner_text()

    # the segment table: each header on one line, the text wrapped inside its cell, nothing cut off
    cells = page.locator("#transcript-segments")
    cells.get_by_text("museum").locator("visible=true").first.wait_for(timeout=10_000)
    page.wait_for_timeout(500)  # the column widths follow the result in a second event
    layout = page.evaluate(
        """() => {
            const table = document.querySelector('#transcript-segments');
            const box = e => e.getBoundingClientRect();
            const leaves = [...table.querySelectorAll('*')].filter(e => !e.children.length && box(e).height > 0);
            const line = e => parseFloat(getComputedStyle(e).lineHeight) || 20;
            const heads = leaves.filter(e => ['start (s)', 'end (s)', 'text'].includes((e.textContent || '').trim()));
            const text = leaves.find(e => (e.textContent || '').includes('museum'));
            const wrapper = table.querySelector('.table-wrap') || table;
            return {
                heads: heads.map(h => [h.textContent.trim(), box(h).height / line(h)]),
                lines: box(text).height / line(text),
                inside: box(text).right <= box(wrapper).right + 1 && text.scrollWidth <= text.clientWidth + 1,
                sideways: wrapper.scrollWidth > wrapper.clientWidth + 1,
            };
        }"""
    )
    assert len(layout["heads"]) == 3 and all(lines < 1.5 for _, lines in layout["heads"]), layout  # one line each
    assert layout["lines"] > 1.5 and layout["inside"] and not layout["sideways"], layout  # wrapped, all of it shown


def test_the_tab_says_what_it_does_and_shows_its_examples_on_a_laptops_first_screen(page):
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        page.reload()
        page.get_by_role("tab", name="Transcribe", exact=True).click()
        about = page.get_by_text("Speech to text with Whisper").locator("visible=true").first
        about.wait_for(timeout=10_000)
        chips = page.get_by_role("button", name="what_color_is_the_shape.wav").locator("visible=true").first
        box = chips.bounding_box()
        assert box["y"] + box["height"] <= 800, box  # no scrolling to find them
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
