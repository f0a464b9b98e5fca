"""What both Whisper backends share: decoding the input, checking options against the model, tidying results.

A backend implements ``decode`` (one recording in, a Decoding out) and says whether its model is multilingual; the
rest happens here, the same way for every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..core.base import Pipeline
from ..core.budget import Deadline
from ..core.errors import InputError
from ..core.io import audio_duration, check_audio_bounds, load_audio
from .chunks import Chunk, speech_windows
from .options import LANGUAGES, TranscribeOptions
from .results import DETECTED, ENGLISH_ONLY, GIVEN, Decoding, Segment, Transcript, Word

Report = Callable[[float], None]  # called with the seconds of the recording decoded so far

# When an English-only model's text is doubtful. Whisper tiny.en (the shipped fallback) on espeak-ng sentences, beam
# 5, with and without VAD, scored a mean log-probability per token of -0.30 to -0.51 on English texts of 10 words or
# more, and -0.82 to -1.24 on French, German, Spanish, Italian, Dutch and Portuguese ones; shorter texts score lower
# (their first tokens are guesses): English -0.33 to -1.0 ("a red circle"), French "il fait beau aujourd'hui" -1.41.
# On Polish it looped one English phrase (compression ratio 2.1 to 13). Without VAD, faster-whisper samples a window
# again when its first decoding fails Whisper's checks: every French or German sentence was, no English one, and a
# sample can pass those checks with made-up text ("No, no, no, no"). The model hears other languages as
# English-sounding words: only its doubt tells them apart.
LOW_CONFIDENCE = -0.8  # mean log-probability per token (a probability of 45 %) below which the text is doubtful
LOW_CONFIDENCE_SHORT = -1.2  # the same (a probability of 30 %) for a text of fewer than SHORT words
SHORT = 10  # words
REPETITIVE = 2.0  # compression ratio above which the text repeats itself (English sentences: 0.3 to 1.4)
RESAMPLED = 0.5  # share of the text decoded again by sampling above which it is doubtful


class SpeechPipeline(Pipeline):
    """Audio (paths, bytes, or Gradio's (sample_rate, array)) in, one Transcript each out."""

    Options = TranscribeOptions
    batch_size = 4  # recordings decoded at once; each is transcribed in turn
    engine: str  # the library that runs the model, for the System panel

    @property
    def multilingual(self) -> bool:
        raise NotImplementedError

    @property
    def compute_type(self) -> str:
        raise NotImplementedError

    @property
    def description(self) -> str:
        return f"{self.spec.name} ({self.spec.source}) on {self.device.type}, {self.compute_type} ({self.engine})"

    def check_inputs(self, inputs) -> None:
        """At most limits().audio_files_per_request recordings lasting limits().audio_seconds_per_request together
        (measured before any model runs: from headers, else by decoding).

        Calls are ``Pipeline.__call__``'s: ``progress`` gets the fraction (0 to 1) of the current recording done, as
        segments finish; recordings are transcribed one after another, in list order. Once a ``deadline`` has passed
        no further window of speech starts (the first always runs); a transcript cut short says where
        (``Transcript.stopped_at``), and later recordings get no segments.
        """
        check_audio_bounds(inputs)

    def options(self, **overrides) -> TranscribeOptions:
        options = super().options(**overrides)
        if not self.multilingual:
            _check_english_only(self.spec.name, options)
        return options

    def preprocess(self, sources: list, options: TranscribeOptions) -> list[np.ndarray]:
        return [load_audio(source) for source in sources]

    def _forward(
        self,
        audios: list[np.ndarray],
        options: TranscribeOptions,
        progress: Callable[[float], None] | None = None,
        deadline: Deadline | None = None,
    ) -> list[Decoding]:
        decodings = []
        for audio in audios:
            # A recording not started once the deadline passed: nothing of it is transcribed
            if decodings and deadline is not None and deadline.stop_before_next_step():
                decodings.append(replace(self._silence(options), stopped_at=0.0))
                continue
            duration = audio_duration(audio)
            report = _reporter(progress, duration)
            windows = speech_windows(audio) if options.vad else None
            decodings.append(
                self.decode(audio, windows, options, report, deadline) if windows != [] else self._silence(options)
            )
            report(duration)
        return decodings

    def decode(
        self,
        audio: np.ndarray,
        windows: list[Chunk] | None,
        options: TranscribeOptions,
        report: Report,
        deadline: Deadline | None = None,
    ) -> Decoding:
        """Transcribe one recording (mono float32 at SAMPLE_RATE): only ``windows`` (the speech VAD found, each at
        most 30 s) or, for None, all of it. Segment times are the recording's; call ``report`` as they finish.
        Once ``deadline`` has passed, stop before the next window (or segment) and say where (``stopped_at``)."""
        raise NotImplementedError

    def _silence(self, options: TranscribeOptions) -> Decoding:
        known = options.language is not None or not self.multilingual
        return Decoding([], options.language or "en", 1.0 if known else 0.0)

    def postprocess(
        self, decodings: list[Decoding], audios: list[np.ndarray], options: TranscribeOptions
    ) -> list[Transcript]:
        results = []
        for decoding, audio in zip(decodings, audios):
            duration = audio_duration(audio)
            segments = tidy(decoding.segments, duration)
            confidence = _confidence(segments)
            results.append(
                Transcript(
                    " ".join(s.text for s in segments),
                    segments,
                    decoding.language,
                    round(float(decoding.language_probability), 3),
                    duration,
                    self.spec.name,
                    options.task,
                    None if decoding.stopped_at is None else round(min(decoding.stopped_at, duration), 2),
                    self._language_source(options),
                    None if confidence is None else round(confidence, 3),
                    None if self.multilingual else _english_doubt(segments),
                )
            )
        return results

    def _language_source(self, options: TranscribeOptions) -> str:
        if not self.multilingual:
            return ENGLISH_ONLY
        return GIVEN if options.language is not None else DETECTED


def _check_english_only(model: str, options: TranscribeOptions) -> None:
    choose = "or choose a multilingual model (whisper-tiny, whisper-base, whisper-small)"
    if options.task == "translate":
        raise InputError(
            f"'{model}' is an English-only model, so it cannot translate. Set the task to transcribe, {choose}"
        )
    if options.language not in (None, "en"):
        raise InputError(
            f"'{model}' is an English-only model; it cannot transcribe "
            f"{LANGUAGES[options.language].title()}. Set the language to auto or en, {choose}"
        )


def _scores(segments: tuple[Segment, ...], name: str) -> list[tuple[float, int]]:
    """(score, weight) of each segment that has the score ``name``, weighted by its text's length (~ its tokens)."""
    return [(getattr(s, name), len(s.text)) for s in segments if getattr(s, name) is not None]


def _mean(scored: list[tuple[float, int]]) -> float:
    return sum(score * weight for score, weight in scored) / max(1, sum(weight for _, weight in scored))


def _confidence(segments: tuple[Segment, ...]) -> float | None:
    """The decoder's mean probability per token over ``segments`` (None: the backend gave no scores)."""
    scored = _scores(segments, "avg_logprob")
    return math.exp(_mean(scored)) if scored else None


def _english_doubt(segments: tuple[Segment, ...]) -> str | None:
    """Why an English-only model's text may be wrong: it was unsure of most of it, or had to decode most of it again
    by sampling (the speech may be another language, or unclear), or the text repeats itself (a model lost in
    speech it does not know). None: no sign of it."""
    logprobs, ratios = _scores(segments, "avg_logprob"), _scores(segments, "compression_ratio")
    resampled = [(float(temperature > 0), weight) for temperature, weight in _scores(segments, "temperature")]
    if ratios and _mean(ratios) > REPETITIVE:
        return (
            "The text repeats itself, a sign the model could not follow the speech: it may not be English, "
            "and this model knows only English"
        )
    low = LOW_CONFIDENCE if sum(len(s.text.split()) for s in segments) >= SHORT else LOW_CONFIDENCE_SHORT
    if (logprobs and _mean(logprobs) < low) or (resampled and _mean(resampled) > RESAMPLED):
        return (
            "The model was unsure of most of what it heard: the speech may not be English (this model knows only "
            "English) or may be unclear, so the text is probably wrong"
        )
    return None


def _reporter(progress: Callable[[float], None] | None, duration: float) -> Report:
    if progress is None:
        return lambda seconds: None
    done = [0.0]  # the bar never moves back (a window decoded again reports earlier times)

    def report(seconds: float) -> None:
        done[0] = max(done[0], min(1.0, max(0.0, seconds / duration)))
        progress(done[0])

    return report


def tidy(segments: list[Segment], duration: float) -> tuple[Segment, ...]:
    """Segments in order, not overlapping, inside the recording, without empty text; times to 10 ms.

    Decoders can emit a timestamp past the end of the audio, or a segment that starts before the previous one ends
    (the last word of a window repeated in the next); subtitles and tables need neither.
    """
    limit = math.floor(duration * 100) / 100
    tidied: list[Segment] = []
    floor = 0.0
    for segment in sorted(segments, key=lambda s: s.start):
        text = " ".join(segment.text.split())
        if not text:
            continue
        start = _clamp(segment.start, floor, limit)
        end = _clamp(segment.end, start, limit)
        tidied.append(replace(segment, start=start, end=end, text=text, words=_tidy_words(segment.words, start, end)))
        floor = end
    return tuple(tidied)


def _tidy_words(words: tuple[Word, ...], start: float, end: float) -> tuple[Word, ...]:
    tidied = []
    for word in words:
        if not word.text.strip():
            continue
        word_start = _clamp(word.start, start, end)
        word_end = _clamp(word.end, word_start, end)
        probability = None if word.probability is None else round(float(word.probability), 3)
        tidied.append(Word(word_start, word_end, word.text, probability))
        start = word_end
    return tuple(tidied)


def _clamp(seconds: float, low: float, high: float) -> float:
    return min(max(round(float(seconds), 2), low), high)
