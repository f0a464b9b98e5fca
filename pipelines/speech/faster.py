"""Whisper on CTranslate2 through faster-whisper: int8 on CPU, half precision on CUDA, Silero VAD built in."""

from __future__ import annotations

import copy
import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..core import turns
from ..core.budget import Deadline
from ..core.checkpoints import CTRANSLATE2, checkpoint_dir, translating_load_errors, weights_files
from ..core.io import SAMPLE_RATE
from ..core.registry import ModelSpec
from .base import Report, SpeechPipeline
from .chunks import Chunk
from .options import TranscribeOptions
from .results import Decoding, Segment, Word

WINDOW_BATCH = 8  # VAD windows per batched forward pass (up to 4 minutes of speech)
# Groups of windows decoded at once on CPU, each by its own CTranslate2 worker with its share of the threads: beam
# search leaves a worker's extra threads idle much of the time, so two single-threaded workers on 2 cores finished a
# minute of speech ~20 % sooner than one worker with both threads, with the same segments.
CPU_WORKERS = 2
# Rounds of groups a recording is decoded in on CPU, at least: the progress bar moves after each (~1 in 4 of the
# speech), at the cost of smaller batches (2 windows per worker for a 4-minute recording instead of 4 or 5).
MIN_ROUNDS = 4
TAIL = 2.0  # seconds: speech left after a window's last segment that is decoded again on its own


class FasterWhisper(SpeechPipeline):
    hub_files = CTRANSLATE2
    engine = "faster-whisper"

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model, workers: int = 1):
        super().__init__(spec, device, dtype)
        self.model, self.workers = model, workers

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "FasterWhisper":
        from faster_whisper import WhisperModel

        path = checkpoint_dir(spec, CTRANSLATE2)
        weights_files(spec, path, CTRANSLATE2)  # a clear error when model.bin did not arrive
        # As many threads in all as torch uses (the cores, or OMP_NUM_THREADS): CTranslate2's own default of 4 would
        # crowd a 2-core machine.
        threads = torch.get_num_threads()
        workers = min(CPU_WORKERS, threads) if device.type == "cpu" else 1
        with translating_load_errors(spec, path):
            model = WhisperModel(
                str(path),
                device=device.type,
                device_index=device.index or 0,
                compute_type=_compute_type(device, dtype),
                cpu_threads=max(1, threads // workers),
                num_workers=workers,
            )
        return cls(spec, device, dtype, model, workers)

    @property
    def multilingual(self) -> bool:
        return self.model.model.is_multilingual

    @property
    def compute_type(self) -> str:
        return self.model.model.compute_type

    def decode(
        self,
        audio: np.ndarray,
        windows: list[Chunk] | None,
        options: TranscribeOptions,
        report: Report,
        deadline: Deadline | None = None,
    ) -> Decoding:
        settings = dict(
            task=options.task,
            language=options.language,
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            hotwords=options.hotwords or None,
            initial_prompt=options.initial_prompt or None,
        )
        if windows is None:  # no VAD: faster-whisper walks the whole recording, window after window
            walker = _WindowWatch.walker(self.model, report, deadline)
            found, info = walker.transcribe(audio, vad_filter=False, **settings)
            segments, stopped = _collected(found, report, deadline)
            return Decoding(segments, info.language, info.language_probability, stopped)
        # The VAD windows go through the encoder and decoder in batches (~1.5x faster on CPU). Each is
        # decoded once (no seeking on as in the sequential walk), and the decoder can stop before a window's last
        # sentence: what it left unheard is decoded again on its own, in the detected language.
        segments, info, stopped = self._batched(audio, windows, settings, report, deadline)
        tails = _unheard_tails(windows, segments) if stopped is None else []
        # Past the deadline no tail starts: the first unheard one says where the transcript stops
        if tails and deadline is not None and deadline.stop_before_next_step():
            stopped = tails[0].start / SAMPLE_RATE
        elif tails:  # under the same deadline: once it passes, no further group of tails starts
            found, _, stopped = self._batched(audio, tails, dict(settings, language=info.language), report, deadline)
            segments += found
        return Decoding(segments, info.language, info.language_probability, stopped)

    def _batched(
        self, audio: np.ndarray, windows: list[Chunk], settings: dict, report: Report, deadline: Deadline | None = None
    ):
        """Segments of ``windows``, decoded in groups by the model's workers at once, what faster-whisper says of
        the language, and where the deadline stopped the work (None: it did not). The progress bar moves as groups
        finish, in order. The first group always runs; a later one starts only before the deadline."""
        groups = _groups(windows, self.workers)
        segments, info, stopped = [], None, None
        first, rest = groups[0], groups[1:]
        if settings["language"] is None and self.multilingual:  # detected once, then every group speaks it
            segments, info = self._group(audio, first, settings)
            settings = dict(settings, language=info.language)
            _report_each(segments, report)
        else:
            rest = groups

        request = turns.current()  # the pool's threads work for this request: they give way as it would

        def run(group: list[Chunk]):
            with turns.acting_for(request):
                if group is not groups[0] and deadline is not None and deadline.stop_before_next_step():
                    return None  # not started: groups start in order, so every later one is skipped too
                return self._group(audio, group, settings)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="whisper") as pool:
            for group, done in zip(rest, pool.map(run, rest)):
                if done is None:
                    stopped = group[0].start / SAMPLE_RATE if stopped is None else stopped
                    continue
                found, group_info = done
                segments += found
                info = info or group_info
                _report_each(found, report)
        return segments, info, stopped

    def _group(self, audio: np.ndarray, windows: list[Chunk], settings: dict) -> tuple[list[Segment], object]:
        from faster_whisper import BatchedInferencePipeline

        clips = [{"start": w.start / SAMPLE_RATE, "end": w.end / SAMPLE_RATE} for w in windows]
        batched = BatchedInferencePipeline(self.model)  # one per call: it keeps word-timing state between batches
        found, info = batched.transcribe(
            audio, clip_timestamps=clips, batch_size=WINDOW_BATCH, without_timestamps=False, **settings
        )
        return [_converted(segment) for segment in found], info


def _groups(windows: list[Chunk], workers: int) -> list[list[Chunk]]:
    """``windows`` cut into consecutive, nearly equal groups of at most WINDOW_BATCH, a multiple of ``workers`` of
    them: every worker decodes as much, and the progress bar moves at least once per round. With several workers
    (CPU) there are at least MIN_ROUNDS rounds where the windows allow, so the bar moves along a long recording."""
    rounds = math.ceil(len(windows) / (workers * WINDOW_BATCH))
    if workers > 1:
        rounds = max(rounds, min(MIN_ROUNDS, math.ceil(len(windows) / workers)))
    count = workers * rounds
    size = math.ceil(len(windows) / count)
    return [windows[start : start + size] for start in range(0, len(windows), size)]


def _collected(found, report: Report, deadline: Deadline | None = None) -> tuple[list[Segment], float | None]:
    """The segments of faster-whisper's walk, and where the deadline stopped it (None: at the end): after a segment,
    or before a window (``_WindowWatch``: silence or noise yields no segment for minutes of windows)."""
    segments: list[Segment] = []
    try:
        for segment in found:  # a generator that decodes as it goes: segments move the progress bar
            segments.append(_converted(segment))
            report(segments[-1].end)
            if deadline is not None and deadline.stop_before_next_step():
                getattr(found, "close", lambda: None)()  # the walk stops here: no further window is decoded
                return segments, segments[-1].end
    except _Stopped as stop:
        return segments, max([stop.seconds, *(s.end for s in segments[-1:])])
    return segments, None


class _Stopped(Exception):
    """Raised inside faster-whisper's walk, before a window, once the deadline has passed."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds  # where the window that was not started begins


class _WindowWatch:
    """Sees each window of faster-whisper's sequential walk start: moves the progress bar there and, once
    ``deadline`` has passed, stops the walk before any window after the first.

    The walk is one generator that yields only segments, so a long stretch without speech would run to its end
    unchecked. Before each window it logs "Processing segment at <time>" at debug level; a per-request copy of the
    model (sharing the loaded CTranslate2 model) gets this object as its logger, which reads that time and raises
    ``_Stopped`` there. Every other log call goes to faster-whisper's own logger.
    """

    def __init__(self, logger: logging.Logger, report: Report, deadline: Deadline | None):
        self.logger, self.report, self.deadline = logger, report, deadline

    @classmethod
    def walker(cls, model, report: Report, deadline: Deadline | None):
        """A shallow copy of ``model`` (a faster-whisper WhisperModel) that logs to a watch of its own."""
        walker = copy.copy(model)
        walker.logger = cls(model.logger, report, deadline)
        return walker

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging.Logger's name)
        return level >= logging.DEBUG

    def debug(self, message: str, *args) -> None:
        if message.startswith("Processing segment at") and args:
            seconds = _seconds(args[0])
            if seconds > 0 and self.deadline is not None and self.deadline.stop_before_next_step():
                raise _Stopped(seconds)
            self.report(seconds)
        self.logger.debug(message, *args)

    def __getattr__(self, name: str):
        return getattr(self.logger, name)


def _seconds(timestamp: str) -> float:
    """'01:02.500' or '1:01:02.500' (faster-whisper's format_timestamp) in seconds."""
    total = 0.0
    for part in str(timestamp).split(":"):
        total = total * 60 + float(part)
    return total


def _report_each(segments: list[Segment], report: Report) -> None:
    for segment in segments:
        report(segment.end)


def _unheard_tails(windows: list[Chunk], segments: list[Segment]) -> list[Chunk]:
    """The end of each window from its last segment on, where more than TAIL seconds of it went unheard.

    A tail starts at the pause nearest to the last segment's end (from 0.75 s before it to a second after):
    Whisper's end times run a little late or early, and a pause neither cuts the first word of the unheard sentence
    nor repeats the last heard one.
    """
    tails = []
    for window in windows:
        ends = [s.end for s in segments if window.offset <= s.start < window.end / SAMPLE_RATE]
        if not ends:
            continue
        last = round(max(ends) * SAMPLE_RATE)
        near = [pause for pause in window.pauses if -0.75 * SAMPLE_RATE <= pause - last <= SAMPLE_RATE]
        start = min(near, key=lambda pause: abs(pause - last)) if near else last
        if window.end - start > TAIL * SAMPLE_RATE:
            tails.append(Chunk(start, window.end))
    return tails


def _converted(segment) -> Segment:
    """A faster-whisper segment as ours (times are already the recording's)."""
    words = tuple(Word(w.start, w.end, w.word, w.probability) for w in segment.words or ())
    scores = segment.avg_logprob, segment.compression_ratio, segment.temperature
    return Segment(segment.start, segment.end, segment.text, words, *scores)


def _compute_type(device: torch.device, dtype: torch.dtype) -> str:
    """int8 on CPU (CTranslate2's fastest there); the pipeline's float type on CUDA."""
    if device.type != "cuda":
        return "int8"
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")
