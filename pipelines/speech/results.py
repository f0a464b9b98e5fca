"""What a transcription returns: frozen records, times in seconds from the start of the recording."""

from __future__ import annotations

from dataclasses import dataclass, field

# Where Transcript.language comes from
DETECTED = "detected"  # the model heard it; language_probability is its measure
GIVEN = "given"  # the caller asked for it: nothing was measured
ENGLISH_ONLY = "english-only"  # the model knows only English: nothing was measured


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
    # How sure the decoder was: its mean log-probability per token, and how much the text repeats itself (gzip
    # compression ratio; Whisper calls above 2.4 a failed decoding). None when the backend does not say. Not part of
    # a segment's identity: batching the same window differently moves them in the last digits.
    avg_logprob: float | None = field(default=None, compare=False)
    compression_ratio: float | None = field(default=None, compare=False)
    # The sampling temperature of the decoding kept: above 0 when the first (greedy or beam) decoding failed
    # Whisper's own checks (too unsure, or repetitive) and the window was decoded again by sampling
    temperature: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when no speech was found
    segments: tuple[Segment, ...]  # in order, not overlapping, within [0, duration]
    language: str  # code, e.g. "en": detected, or the one asked for
    language_probability: float  # measured only when language_source is DETECTED; else 1.0
    duration: float  # seconds of audio
    model: str  # the model that actually ran (after any fallback)
    task: str = "transcribe"  # or "translate" (the text is English)
    # Seconds of the recording transcribed when the request's time limit stopped the work (the segments cover only
    # that far); None when it was transcribed to its end.
    stopped_at: float | None = None
    language_source: str = DETECTED  # DETECTED, GIVEN (asked for) or ENGLISH_ONLY (the model knows no other)
    # The decoder's mean probability per token over the transcript, 0 to 1 (None: the backend does not say)
    confidence: float | None = None
    # Why the text may be wrong although the model gave one, in a sentence a person reads (None: no sign of it);
    # e.g. an English-only model that was unsure of most of what it heard: the speech may be another language.
    doubt: str | None = None

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
