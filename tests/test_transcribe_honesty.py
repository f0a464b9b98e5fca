"""The Transcribe tab says what it cannot vouch for: a stand-in model that ran instead of the one asked for (and
what it cannot do), a language nobody measured, and text an English-only model doubts (speech in another language).
The progress bar says how far, of how long, and about how long is left; loading the model is a stage of its own.

Through gradio_client against the served toy app, and the tab's handler called as Gradio calls it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

import pipelines
from demos import examples
from demos import transcribe as tab
from pipelines.core import runtime
from pipelines.speech.results import ENGLISH_ONLY
from tests import speech_setups
from tests.transcribe_checks import missing

pytestmark = pytest.mark.slow

say, hub_out_of_reach = speech_setups.say, speech_setups.hub_out_of_reach  # fixtures

EMBEDDED = "whisper-tiny.en-embedded"
ENGLISH = "the museum opens at nine in the morning and closes at six in the evening"
# The same kind of sentence in other languages: tiny.en hears English-sounding words in them
FOREIGN = {
    "fr": "Bonjour, je voudrais réserver une table pour deux personnes ce soir à huit heures.",
    "de": "Die Katze schläft auf dem Sofa, während die Kinder im Garten spielen.",
}


def transcribe(client, path, **options) -> tuple:
    return client.predict(handle_file(str(path)), **options, api_name="/transcribe")


# ------------------------------------------------------------------------------------------- the stand-in model


def test_a_stand_in_model_is_named_next_to_the_result_with_what_it_cannot_do(client, say, hub_out_of_reach):
    text, details, *_ = transcribe(client, say(ENGLISH), model="whisper-small")
    assert not missing({"museum", "morning", "evening"}, text)
    note, facts = details.split("\n\n")  # the note first, right next to the transcript
    assert f"{EMBEDDED} ran instead of whisper-small" in note and "knows only English" in note
    assert f"model {EMBEDDED}" in facts
    assert "English (this model knows only English)" in facts and "probability" not in facts


def test_the_model_asked_for_gets_no_note_on_english_speech(client, say):
    _, details, *_ = transcribe(client, say(ENGLISH))  # the toy profile's own model: tiny.en
    assert "⚠️" not in details and "ran instead" not in details
    assert "English (this model knows only English)" in details and "100%" not in details


def test_a_stand_in_english_model_refusing_a_language_says_it_stands_in(client, say, hub_out_of_reach):
    with pytest.raises(AppError) as info:
        transcribe(client, say(FOREIGN["fr"], "fr"), model="whisper-small", language="fr")
    message = str(info.value)
    assert "whisper-small could not be loaded on this server" in message and "cannot transcribe French" in message


def test_several_files_on_a_stand_in_get_the_note_too(client, say, hub_out_of_reach):
    files = [handle_file(str(say(ENGLISH))), handle_file(str(say("show me a photo of a cat")))]
    _, details, *_ = client.predict(files, model="whisper-small", api_name="/transcribe_files")
    note, table = details.split("\n\n")
    assert f"{EMBEDDED} ran instead of whisper-small" in note
    assert "English (only one known)" in table and "%" not in table


# ------------------------------------------------------------------------------------- speech in another language


@pytest.mark.parametrize("language", sorted(FOREIGN))
def test_other_languages_on_the_english_only_model_are_flagged_not_vouched_for(client, say, language):
    _, details, *_ = transcribe(client, say(FOREIGN[language], language))
    assert details.startswith("⚠️") and "may not be English" in details and "multilingual model" in details
    assert "probability" not in details


def test_english_speech_on_the_english_only_model_is_not_flagged(client, say):
    for sentence in (ENGLISH, "please send the report to the team before the meeting on thursday"):
        text, details, *_ = transcribe(client, say(sentence))
        assert "⚠️" not in details and "may not be English" not in details, (sentence, text)


@pytest.mark.parametrize("vad", [True, False], ids=["vad", "whole-recording"])
def test_the_transcript_records_its_doubt_and_that_no_language_was_measured(say, vad):
    transcriber = pipelines.load("transcribe", EMBEDDED)
    english, french = transcriber([say(ENGLISH), say(FOREIGN["fr"], "fr")], vad=vad)
    assert english.language_source == french.language_source == ENGLISH_ONLY
    assert english.doubt is None and "may not be English" in french.doubt
    assert english.confidence > french.confidence


# ---------------------------------------------------------------------------------------------- bundled examples


# What each bundled recording must be heard saying: the words a misquote loses (tiny.en once wrote "That's what your
# country can do for you" and "show me a photo in the cat"); a leading "a" may go unheard.
QUOTES = {
    "ask_not_what_your_country_can_do_for_you": "ask not what your country can do for you",
    "what_color_is_the_shape": "what color is the shape",
    "a_red_circle_on_a_white_background": "red circle on a white background",
    "show_me_a_photo_of_a_cat": "show me a photo of a cat",
}


@pytest.mark.parametrize("stem", sorted(QUOTES))
def test_every_bundled_speech_example_is_quoted_right(stem):
    """The toy profile's model (the offline fallback too) writes what the example says: a demo's first click shows
    a right answer, without a doubt."""
    assert {Path(e).stem for e in examples.speech()} == {*QUOTES, "silence"}
    [result] = pipelines.load("transcribe", EMBEDDED)([examples.spoken(stem)])
    assert QUOTES[stem] in " ".join(re.sub(r"[^a-z ]", "", result.text.lower()).split()), result.text
    assert result.doubt is None


# ------------------------------------------------------------------------------------------------ the progress bar


class Bar:
    """What a person reads on the progress bar: each (fraction, description) the handler showed."""

    def __init__(self):
        self.shown: list[tuple[float, str]] = []

    def __call__(self, fraction, desc=None, **_):
        self.shown.append((fraction, desc or ""))


@pytest.fixture
def long_talk(speak, tmp_path):
    """~2 minutes of sentences with pauses: several windows of speech."""
    from tests.transcribe_checks import concatenate

    sentences = [
        "the museum opens at nine in the morning and closes at six in the evening",
        "our train to the mountains was delayed by heavy snow",
        "please bring a blanket and a flashlight to the camping trip",
        "the chef added garlic, lemon and fresh parsley to the soup",
    ] * 5
    path = tmp_path / "talk.wav"
    concatenate([speak(s) for s in sentences], path, gaps=[1.0] * len(sentences), total=150)
    return path


def test_a_long_recording_moves_the_bar_with_how_far_of_how_long_and_the_time_left(long_talk):
    pipelines.load("transcribe")  # warm: loading is no stage of this request
    bar = Bar()
    text, *_ = tab.transcribe(str(long_talk), progress=bar)
    assert not missing({"museum", "snow", "camping", "garlic"}, text)
    assert not any(desc.startswith("Loading") for _, desc in bar.shown), bar.shown
    assert bar.shown[0] == (0, "Transcribing: 2:30 of speech")
    along = [(f, desc) for f, desc in bar.shown if 0 < f < 1]
    assert len({f for f, _ in along}) >= 3, bar.shown  # it moves along the recording, not only at its end
    assert all(re.fullmatch(r"Transcribing: \d:\d\d of 2:30, about \d+ (s|min) left", desc) for _, desc in along)
    fractions = [f for f, _ in bar.shown]
    assert fractions == sorted(fractions) and fractions[-1] == 1


def test_loading_the_model_is_its_own_stage_only_when_it_is_not_loaded(speak):
    pipelines.load("transcribe")  # what this process had loaded comes back after the fresh start below
    saved = dict(runtime.cache.items())
    runtime.cache.clear()  # a fresh server: nothing loaded yet
    try:
        cold = Bar()
        tab.transcribe(str(speak("what color is the shape")), progress=cold)
    finally:
        runtime.cache.clear()
        for key, value in saved.items():
            runtime.cache.get(key, lambda value=value: value)
    assert cold.shown[0] == (0, f"Loading {EMBEDDED} (its first use on this server)")
    assert cold.shown[1][1].startswith("Transcribing")
    warm = Bar()
    tab.transcribe(str(speak("what color is the shape")), progress=warm)
    assert warm.shown[0][1].startswith("Transcribing") and not any("Loading" in d for _, d in warm.shown)
