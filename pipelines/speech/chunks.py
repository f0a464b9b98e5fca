"""How a long recording is cut into the 30 s windows a Whisper forward pass sees.

With VAD (both backends): Silero VAD's speech regions, packed into windows that start and end in silence. Nothing is
cut mid-word, nothing overlaps, long silences cost nothing, and because the silence *inside* a window stays in, times
need no remapping and a segment never straddles a pause that was cut out.

Without VAD (transformers backend; faster-whisper walks the recording itself): fixed windows that overlap by OVERLAP
seconds. Each window owns the middle of its overlaps, and a segment is kept only by the window that owns its start, so
speech at a border is neither lost nor written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.io import SAMPLE_RATE

WINDOW = 30.0  # seconds: Whisper's input length
OVERLAP = 5.0  # seconds shared by neighbouring windows when VAD is off
PAUSE_MS = 160  # ms: a pause this long ends a speech region, so windows can be cut between sentences


@dataclass(frozen=True)
class Chunk:
    start: int  # first sample, in the recording
    end: int  # one past the last sample
    owns_from: float = 0.0  # seconds: segments that start in [owns_from, owns_to) belong to this chunk
    owns_to: float = float("inf")
    pauses: tuple[int, ...] = ()  # samples inside where a speech region starts: between two regions, VAD heard a pause

    @property
    def offset(self) -> float:
        return self.start / SAMPLE_RATE  # seconds

    def owns(self, seconds: float) -> bool:
        return self.owns_from <= seconds < self.owns_to


def overlapping_windows(samples: int) -> list[Chunk]:
    """WINDOW-second chunks covering ``samples``, each OVERLAP seconds into the next."""
    window, step = int(WINDOW * SAMPLE_RATE), int((WINDOW - OVERLAP) * SAMPLE_RATE)
    starts = [0]
    while starts[-1] + window < samples:
        starts.append(starts[-1] + step)
    half = OVERLAP / 2
    return [
        Chunk(
            start,
            min(start + window, samples),
            owns_from=0.0 if i == 0 else start / SAMPLE_RATE + half,
            owns_to=float("inf") if i == len(starts) - 1 else (start + window) / SAMPLE_RATE - half,
        )
        for i, start in enumerate(starts)
    ]


def speech_windows(audio: np.ndarray) -> list[Chunk]:
    """Chunks of at most WINDOW seconds holding all the speech Silero VAD finds; [] for silence.

    As few chunks as greedy packing needs (each costs one encoder pass), cut at the pauses that make them as even as
    possible: a batch of windows decodes for as long as its longest one takes, and a nearly full window is where
    Whisper most often skips a sentence.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # Silero VAD (ONNX), shipped in faster-whisper

    vad = VadOptions(max_speech_duration_s=WINDOW, min_silence_duration_ms=PAUSE_MS)
    regions = [(r["start"], r["end"]) for r in get_speech_timestamps(audio, vad, sampling_rate=SAMPLE_RATE)]
    window = int(WINDOW * SAMPLE_RATE)
    count = len(_packed(regions, window))
    shortest, longest = 0, window  # binary search for the shortest limit that needs no more chunks
    while longest - shortest > SAMPLE_RATE // 10:
        middle = (shortest + longest) // 2
        shortest, longest = (shortest, middle) if len(_packed(regions, middle)) <= count else (middle, longest)
    return _packed(regions, longest)


def _packed(regions: list[tuple[int, int]], limit: int) -> list[Chunk]:
    """Consecutive speech regions joined while a chunk spans at most ``limit`` samples (a longer region stays whole;
    VAD already keeps regions within WINDOW)."""
    chunks: list[Chunk] = []
    for start, end in regions:
        if chunks and end - chunks[-1].start <= limit:
            # the silence between stays in: no time remapping
            chunks[-1] = Chunk(chunks[-1].start, end, pauses=chunks[-1].pauses + (start,))
        else:
            chunks.append(Chunk(start, end))
    return chunks
