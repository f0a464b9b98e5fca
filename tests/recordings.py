"""Recordings made in tests: mono samples encoded with PyAV, to a file or to a stream (tests of io and limits)."""

from __future__ import annotations

import os

import av
import numpy as np


def encode_with_av(target, fmt: str, codec: str, samples: np.ndarray, rate: int) -> None:
    """Encode mono float32 ``samples`` at ``rate`` Hz with ``codec`` in a ``fmt`` container, written to ``target``:
    a path, or a writable stream (one that cannot seek gives a file without its duration in the header)."""
    target = os.fspath(target) if isinstance(target, (str, os.PathLike)) else target
    with av.open(target, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        step = stream.codec_context.frame_size or 1024
        for start in range(0, len(samples), step):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + step], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
