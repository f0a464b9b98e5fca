"""Encoding many images with a CLIP space: a low-priority worker thread decodes the next batches while the model
encodes the current one; JPEG files are decoded at a reduced scale that still covers the model's input."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..core.budget import Deadline
from ..core.errors import PipelineError
from ..core.io import load_image
from ..fusion.space import BATCH_SIZE, ClipSpace

DECODE_AHEAD = 2  # batches decoded on a worker thread while the model encodes the current one
DECODE_NICENESS = 19  # the decoding thread's priority: lowest, it runs on CPU time the encoder leaves idle

Progress = Callable[[int, int, str], None]  # (done, total, what is being done)


def encode_images(
    space: ClipSpace,
    sources: Sequence,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    deadline: Deadline | None = None,
) -> tuple[np.ndarray, dict[int, str], int]:
    """Embeddings of the images that decode, {position: message} for those that do not, and how many images were
    reached: ``len(sources)``, or fewer if ``deadline`` stopped the work.

    ``deadline`` (None: no limit): once it has passed no further batch starts (the first always runs). The images
    from position ``reached`` on were not tried: neither encoded nor failed, they are left for a later call.

    A low-priority worker thread decodes and preprocesses the next batches with the CPU time the encoder leaves
    idle. It never preempts the encoder: a stalled thread stalls its partner in every matrix product, so decoding
    at equal priority cost about twice its own CPU time. Images the worker has not finished when the encoder needs
    them are decoded on the encoder's thread, from the batch's other end: the encoder never waits for a worker
    that a busy machine starves.
    """
    size = input_size(space)
    batches = [range(start, min(start + batch_size, len(sources))) for start in range(0, len(sources), batch_size)]
    vectors = np.zeros((0, 0), dtype=np.float32)  # no rows: no image decoded
    done_rows: list[tuple[int, np.ndarray]] = []
    failures: dict[int, str] = {}

    def decode(position: int):
        try:
            return decode_pixels(space, sources[position], size)
        except PipelineError as error:
            return error

    def collect(jobs: list) -> list:
        mine = {}
        for position, job in reversed(jobs):
            if not job.done():
                job.cancel()  # fails if the worker is on it: decoded twice then, rather than waited for
                mine[position] = decode(position)
        return [(position, mine[position] if position in mine else job.result()) for position, job in jobs]

    pool = decoding_pool()
    try:
        pending = deque([(p, pool.submit(decode, p)) for p in batch] for batch in batches[:DECODE_AHEAD])
        queued = len(pending)
        done = 0
        while pending:
            # Batches run in order: once the deadline passes, the rest wait
            if done and deadline is not None and deadline.stop_before_next_step():
                break
            decoded = collect(pending.popleft())
            if queued < len(batches):
                pending.append([(p, pool.submit(decode, p)) for p in batches[queued]])
                queued += 1
            good = [(p, pixels) for p, pixels in decoded if not isinstance(pixels, Exception)]
            failures.update((p, str(error)) for p, error in decoded if isinstance(error, Exception))
            if good:
                embedded = space.embed_pixels([pixels for _, pixels in good])
                done_rows.extend(zip((p for p, _ in good), embedded))
            done += len(decoded)
            if progress:
                progress(done, len(sources), "Encoding images")
    finally:  # not waiting for an image the worker may still be on (already decoded here)
        pool.shutdown(wait=False, cancel_futures=True)
    if done_rows:
        done_rows.sort(key=lambda row: row[0])
        vectors = np.stack([v for _, v in done_rows])
    return vectors, failures, done


def decoding_pool() -> ThreadPoolExecutor:
    """The one worker thread that decodes images for ``encode_images``, at the lowest priority."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode", initializer=_yield_cpu)


def _yield_cpu() -> None:
    """Lowers the calling thread's scheduling priority (Linux sets niceness per thread; elsewhere: no change)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICENESS)


def input_size(space: ClipSpace) -> int:
    """The side, in pixels, of the square image the model reads."""
    size = getattr(getattr(space.model, "visual", None), "image_size", 224)
    return int(max(size) if isinstance(size, (tuple, list)) else size)


def decode_pixels(space: ClipSpace, source, size: int):
    """Preprocessed pixels; JPEG files are decoded at a reduced scale that still covers the model's input."""
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".jpg", ".jpeg"):
        with contextlib.suppress(Exception):  # anything odd: the full decoder below says what is wrong
            with Image.open(source, formats=["JPEG"]) as image:
                image.draft("RGB", (size, size))
                return space.preprocess(load_image(image))
    return space.pixels(source)
