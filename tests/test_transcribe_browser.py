"""The Transcribe tab in a real browser (Debian chromium driven by Playwright): speak, read, search by it."""

from __future__ import annotations

import pytest

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
