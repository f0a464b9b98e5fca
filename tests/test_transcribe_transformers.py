"""The transformers backend on an untrained tiny Whisper saved at test time: the plumbing, not the words (random
weights decode gibberish). Also the 30 s windows both backends cut long recordings into."""

import numpy as np
import pytest
import torch

import pipelines
from pipelines.core.io import SAMPLE_RATE, load_audio
from pipelines.speech import LANGUAGES, untrained
from pipelines.speech.chunks import OVERLAP, WINDOW, overlapping_windows, speech_windows
from tests.transcribe_checks import assert_well_formed, concatenate, missing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The untrained model's matrices are tiny: a second thread only waits on the first, and on a busy machine the
    two can spin against each other for a minute where one thread takes a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return untrained.build(tmp_path_factory.mktemp("whisper") / "tiny-untrained")


@pytest.fixture(scope="module")
def transcriber(checkpoint):
    return pipelines.load("transcribe", str(checkpoint))  # a local directory: the backend comes from its config.json


def test_a_transformers_checkpoint_runs_on_the_transformers_backend(transcriber):
    assert "(transformers)" in transcriber.description and "float32" in transcriber.description


def test_one_transcript_per_recording_with_segments_inside_it(transcriber, checkpoint, speak):
    short, longer = speak("what color is the shape"), speak("the museum opens at nine and closes at six. " * 3)
    results = transcriber([short, longer, short])
    assert len(results) == 3
    assert results[0].duration < results[1].duration and results[0].duration == results[2].duration
    for result in results:
        assert result.has_speech and result.model == str(checkpoint) and result.language == "en"
        assert_well_formed(result)


def test_half_precision_runs_end_to_end(checkpoint, speak):
    # What a GPU user runs (fp16 weights and features), exercised on the CPU: dtype mismatches show up here.
    transcriber = pipelines.load("transcribe", str(checkpoint), dtype="float16")
    assert next(transcriber.model.parameters()).dtype == torch.float16 and "float16" in transcriber.description
    [result] = transcriber([speak("ask not what your country can do for you")], beam_size=1)
    assert_well_formed(result)


def test_a_long_recording_without_vad_is_decoded_window_by_window(transcriber):
    noise = np.random.default_rng(0).normal(0, 0.1, int(70 * SAMPLE_RATE)).astype(np.float32)
    reported = []
    [result] = transcriber([(SAMPLE_RATE, noise)], vad=False, beam_size=1, progress=reported.append)
    assert result.duration == pytest.approx(70)
    assert_well_formed(result)
    assert len(set(reported)) >= 3 and reported == sorted(reported) and reported[-1] == 1.0  # three windows


def test_word_timestamps_and_prompts_reach_the_decoder(transcriber, speak):
    [result] = transcriber(
        [speak("show me a photo of a cat")],
        word_timestamps=True,
        beam_size=2,
        initial_prompt="A photo.",
        hotwords="cat",
    )
    assert_well_formed(result)
    assert all(segment.words for segment in result.segments)


def test_what_the_decoder_says_becomes_timed_segments_without_the_prompt(transcriber, speak, tmp_path, monkeypatch):
    """A decoder that always says '<|0.00|> Hello there.<|1.50|><|1.50|> General Kenobi!<|3.00|>' after a prompt."""
    tokenizer = transcriber.processor.tokenizer
    token, words = tokenizer.convert_tokens_to_ids, lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    said = [
        token("<|startofprev|>"),
        *words(" the prompt"),
        token("<|startoftranscript|>"),
        token("<|0.00|>"),
        *words(" Hello there."),
        token("<|1.50|>"),
        token("<|1.50|>"),
        *words(" General Kenobi!"),
        token("<|3.00|>"),
        token("<|endoftext|>"),
    ]
    monkeypatch.setattr(
        transcriber.model, "generate", lambda input_features, **_: torch.tensor([said] * len(input_features))
    )
    starts = concatenate([speak("hello there"), speak("general kenobi")], tmp_path / "two.wav", gaps=[2, 40])
    [result] = transcriber([tmp_path / "two.wav"], initial_prompt="the prompt")  # two VAD windows, 40 s apart
    assert result.text == "Hello there. General Kenobi! Hello there. General Kenobi!"
    first, second = starts
    assert [s.text for s in result.segments] == ["Hello there.", "General Kenobi!"] * 2
    assert result.segments[0].start == pytest.approx(first, abs=0.5)  # each window's times start where it starts
    assert result.segments[2].start == pytest.approx(second, abs=0.5)
    assert result.segments[1].end - result.segments[1].start == pytest.approx(1.5, abs=0.02)


def test_a_multilingual_model_detects_the_language_and_translates_when_asked(tmp_path, speak):
    """Random weights say nothing sensible, so this checks what reaches the decoder: the detected language (one of
    Whisper's, with a probability), and a chosen language and task as the tokens that start each decoding."""
    transcriber = pipelines.load("transcribe", str(untrained.build(tmp_path / "tiny-multilingual", multilingual=True)))
    assert transcriber.multilingual
    question = speak("what color is the shape")
    [detected] = transcriber([question], beam_size=1)
    assert detected.language in LANGUAGES and 0 < detected.language_probability <= 1
    decoded, generate = [], transcriber.model.generate
    transcriber.model.generate = lambda *args, **kwargs: decoded.append(generate(*args, **kwargs)) or decoded[-1]
    [translated] = transcriber([question], language="fr", task="translate", beam_size=1)
    assert translated.language == "fr" and translated.language_probability == 1.0
    tokenizer = transcriber.processor.tokenizer
    sequences = decoded[0]["sequences"] if isinstance(decoded[0], dict) else decoded[0]
    assert tokenizer.convert_ids_to_tokens(sequences[0, :3].tolist()) == [
        "<|startoftranscript|>",
        "<|fr|>",
        "<|translate|>",
    ]
    assert_well_formed(translated)


def test_silence_has_no_speech(transcriber):
    [result] = transcriber([(SAMPLE_RATE, np.zeros(3 * SAMPLE_RATE, np.float32))])
    assert not result.has_speech and result.segments == ()


def test_a_hub_transformers_model_offline_falls_back_to_the_embedded_one(monkeypatch, speak):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [result] = pipelines.load("transcribe", "whisper-tiny-transformers")([speak("what color is the shape")])
    assert result.model == "whisper-tiny.en-embedded" and not missing({"color", "shape"}, result.text)
    assert any("whisper-tiny-transformers could not be loaded" in line for line in pipelines.loaded_models())


@pytest.mark.parametrize("seconds", [0.5, 30, 31, 70, 600])
def test_overlapping_windows_cover_the_recording_and_own_each_moment_once(seconds):
    samples = int(seconds * SAMPLE_RATE)
    windows = overlapping_windows(samples)
    assert windows[0].start == 0 and windows[-1].end == samples
    assert all(w.end - w.start <= WINDOW * SAMPLE_RATE for w in windows)
    assert all(a.end - b.start == OVERLAP * SAMPLE_RATE for a, b in zip(windows, windows[1:]))
    for moment in np.linspace(0, seconds, 301)[:-1]:
        [owner] = [w for w in windows if w.owns(moment)]
        assert owner.start <= moment * SAMPLE_RATE < owner.end


def test_speech_windows_hold_every_sentence_and_skip_long_silence(speak, tmp_path):
    sentences = [
        speak("the library is closed on monday"),
        speak("a yellow taxi stopped at the hotel"),
        speak("penguins live near the south pole"),
    ]
    starts = concatenate(sentences, tmp_path / "talk.wav", gaps=[1.0, 45.0, 2.5], total=80)
    windows = speech_windows(load_audio(tmp_path / "talk.wav"))
    assert all(w.end - w.start <= WINDOW * SAMPLE_RATE for w in windows)
    for start in starts:
        assert any(w.start <= start * SAMPLE_RATE < w.end for w in windows), start
    assert sum(w.end - w.start for w in windows) < 30 * SAMPLE_RATE  # the 45 s pause and the tail are skipped
