"""What a transcription returns: frozen records, times in seconds from the start of the recording."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    start: float  # seconds
    end: float  # seconds
    text: str  # as spoken, with its leading space and punctuation
    probability: float | None  # the decoder's confidence in this word, 0 to 1; None if the backend has none


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float  # seconds
    text: str
    words: tuple[Word, ...] = ()  # empty unless word timestamps were asked for


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when no speech was found
    segments: tuple[Segment, ...]  # in order, not overlapping, within [0, duration]
    language: str  # code, e.g. "en": detected, or the one asked for
    language_probability: float  # 1.0 when the language was given or the model is English-only
    duration: float  # seconds of audio
    model: str  # the model that actually ran (after any fallback)
    task: str = "transcribe"  # or "translate" (the text is English)
    # Seconds of the recording transcribed when the request's time limit stopped the work (the segments cover only
    # that far); None when it was transcribed to its end.
    stopped_at: float | None = None

    @property
    def has_speech(self) -> bool:
        return bool(self.text)


@dataclass(frozen=True)
class Decoding:
    """One recording as a backend decoded it, before the shared tidying into a Transcript."""

    segments: list[Segment]  # in the backend's order and precision
    language: str
    language_probability: float
    stopped_at: float | None = None  # seconds: where the deadline stopped decoding; None if it reached the end
