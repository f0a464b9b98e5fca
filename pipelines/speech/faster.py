"""Whisper on CTranslate2 through faster-whisper: int8 on CPU, half precision on CUDA, Silero VAD built in."""

from __future__ import annotations

import numpy as np
import torch

from ..base import checkpoint_dir, translating_load_errors
from ..registry import ModelSpec
from .base import Report, SpeechPipeline
from .chunks import Chunk
from .options import TranscribeOptions
from .results import Decoding, Segment, Word

# What a hub snapshot of a CTranslate2 Whisper checkpoint needs.
CT2_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"]


class FasterWhisper(SpeechPipeline):
    hub_files = CT2_FILES
    engine = "faster-whisper"

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model):
        super().__init__(spec, device, dtype)
        self.model = model

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
        language, probability = options.language, 1.0
        segments: list[Segment] = []
        # Each VAD window is decoded on its own, with the user's prompt but not the previous window's text: as plain
        # text (without its timestamp tokens) that pushed Whisper into one segment per window.
        for window in windows or [Chunk(0, len(audio))]:  # no windows: faster-whisper walks the whole recording
            found, info = self.model.transcribe(
                audio[window.start:window.end], task=options.task, language=language, beam_size=options.beam_size,
                vad_filter=False, word_timestamps=options.word_timestamps, hotwords=options.hotwords or None,
                initial_prompt=options.initial_prompt or None)
            if language is None:  # detected once, on the first window; the rest are decoded in that language
                language, probability = info.language, info.language_probability
            for segment in found:  # a generator that decodes as it goes: each segment moves the progress bar
                decoded = _shifted(segment, window.offset)
                segments.append(decoded)
                report(decoded.end)
        return Decoding(segments, language, probability)


def _shifted(segment, offset: float) -> Segment:
    """A faster-whisper segment as ours, in the recording's time rather than the window's."""
    words = tuple(Word(offset + w.start, offset + w.end, w.word, w.probability) for w in segment.words or ())
    return Segment(offset + segment.start, offset + segment.end, segment.text, words)


def _compute_type(device: torch.device, dtype: torch.dtype) -> str:
    """int8 on CPU (CTranslate2's fastest there); the pipeline's float type on CUDA."""
    if device.type != "cuda":
        return "int8"
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")
