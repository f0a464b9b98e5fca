"""Whisper on CTranslate2 through faster-whisper: int8 on CPU, half precision on CUDA, Silero VAD built in."""

from __future__ import annotations

import numpy as np
import torch

from ..checkpoints import checkpoint_dir, translating_load_errors
from ..registry import ModelSpec
from ..io import SAMPLE_RATE
from .base import Report, SpeechPipeline
from .chunks import Chunk
from .options import TranscribeOptions
from .results import Decoding, Segment, Word

WINDOW_BATCH = 8  # VAD windows per batched forward pass (up to 4 minutes of speech)
TAIL = 2.0  # seconds: speech left after a window's last segment that is decoded again on its own
# What a hub snapshot of a CTranslate2 Whisper checkpoint needs.
CT2_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"]


class FasterWhisper(SpeechPipeline):
    hub_files = CT2_FILES
    engine = "faster-whisper"

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model):
        super().__init__(spec, device, dtype)
        from faster_whisper import BatchedInferencePipeline

        self.model = model
        self.batched = BatchedInferencePipeline(model)

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "FasterWhisper":
        from faster_whisper import WhisperModel

        path = checkpoint_dir(spec, CT2_FILES)
        with translating_load_errors(spec, path):
            # As many threads as torch uses (the cores, or OMP_NUM_THREADS): CTranslate2's own default of 4 would
            # crowd a 2-core machine.
            model = WhisperModel(str(path), device=device.type, device_index=device.index or 0,
                                 compute_type=_compute_type(device, dtype), cpu_threads=torch.get_num_threads())
        return cls(spec, device, dtype, model)

    @property
    def multilingual(self) -> bool:
        return self.model.model.is_multilingual

    @property
    def compute_type(self) -> str:
        return self.model.model.compute_type

    def decode(self, audio: np.ndarray, windows: list[Chunk] | None, options: TranscribeOptions,
               report: Report) -> Decoding:
        settings = dict(task=options.task, language=options.language, beam_size=options.beam_size,
                        word_timestamps=options.word_timestamps, hotwords=options.hotwords or None,
                        initial_prompt=options.initial_prompt or None)
        if windows is None:  # no VAD: faster-whisper walks the whole recording, window after window
            found, info = self.model.transcribe(audio, vad_filter=False, **settings)
            return Decoding(_collected(found, report), info.language, info.language_probability)
        # The VAD windows go through the encoder and decoder WINDOW_BATCH at a time (~1.5x faster on CPU). Each is
        # decoded once (no seeking on as in the sequential walk), and the decoder can stop before a window's last
        # sentence: what it left unheard is decoded again on its own, in the detected language.
        segments, info = self._batched(audio, windows, settings, report)
        tails = _unheard_tails(windows, segments)
        if tails:
            segments += self._batched(audio, tails, dict(settings, language=info.language), report)[0]
        return Decoding(segments, info.language, info.language_probability)

    def _batched(self, audio: np.ndarray, windows: list[Chunk], settings: dict, report: Report):
        clips = [{"start": w.start / SAMPLE_RATE, "end": w.end / SAMPLE_RATE} for w in windows]
        found, info = self.batched.transcribe(audio, clip_timestamps=clips, batch_size=WINDOW_BATCH,
                                              without_timestamps=False, **settings)
        return _collected(found, report), info


def _collected(found, report: Report) -> list[Segment]:
    segments: list[Segment] = []
    for segment in found:  # a generator that decodes as it goes: segments move the progress bar
        segments.append(_converted(segment))
        report(segments[-1].end)
    return segments


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
    return Segment(segment.start, segment.end, segment.text, words)


def _compute_type(device: torch.device, dtype: torch.dtype) -> str:
    """int8 on CPU (CTranslate2's fastest there); the pipeline's float type on CUDA."""
    if device.type != "cuda":
        return "int8"
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")
