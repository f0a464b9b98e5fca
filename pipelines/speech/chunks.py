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

from ..io import SAMPLE_RATE

WINDOW = 30.0  # seconds: Whisper's input length
OVERLAP = 5.0  # seconds shared by neighbouring windows when VAD is off


@dataclass(frozen=True)
class Chunk:
    start: int  # first sample, in the recording
    end: int  # one past the last sample
    owns_from: float = 0.0  # seconds: segments that start in [owns_from, owns_to) belong to this chunk
    owns_to: float = float("inf")

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
    return [Chunk(start, min(start + window, samples),
                  owns_from=0.0 if i == 0 else start / SAMPLE_RATE + half,
                  owns_to=float("inf") if i == len(starts) - 1 else (start + window) / SAMPLE_RATE - half)
            for i, start in enumerate(starts)]


def speech_windows(audio: np.ndarray) -> list[Chunk]:
    """Chunks of at most WINDOW seconds holding all the speech Silero VAD finds; [] for silence."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # Silero VAD (ONNX), shipped in faster-whisper

    window = int(WINDOW * SAMPLE_RATE)
    regions = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=WINDOW), sampling_rate=SAMPLE_RATE)
    chunks: list[Chunk] = []
    for region in regions:
        if chunks and region["end"] - chunks[-1].start <= window:
            chunks[-1] = Chunk(chunks[-1].start, region["end"])  # the silence between stays in: no time remapping
        else:
            chunks.append(Chunk(region["start"], region["end"]))
    return chunks
