"""Speech to text with Whisper through faster-whisper (CTranslate2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import Pipeline, checkpoint_dir, translating_load_errors
from .errors import InputError
from .io import SAMPLE_RATE, load_audio
from .registry import ModelSpec

# What a hub snapshot of a CTranslate2 Whisper checkpoint needs.
CT2_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"]


@dataclass(frozen=True)
class TranscribeOptions:
    beam_size: int = 5
    vad: bool = True  # skip silence with Silero VAD: faster, and no words hallucinated into silence
    language: str | None = None  # None = detect (multilingual models); English-only models ignore it

    def verify(self) -> None:
        if not isinstance(self.beam_size, int) or not 1 <= self.beam_size <= 10:
            raise InputError(f"beam_size must be a whole number from 1 to 10; got {self.beam_size!r}")


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float  # seconds
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when no speech was found
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration: float  # seconds of audio
    model: str  # the model that actually ran (after any fallback)

    @property
    def has_speech(self) -> bool:
        return bool(self.text)


class FasterWhisper(Pipeline):
    """Audio (paths, bytes, or (sample_rate, array)) in, one Transcript each out."""

    Options = TranscribeOptions
    hub_files = CT2_FILES
    batch_size = 4  # files decoded at once; each file is transcribed in turn

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model):
        super().__init__(spec, device, dtype)
        self.model = model

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "FasterWhisper":
        from faster_whisper import WhisperModel

        path = checkpoint_dir(spec, CT2_FILES)
        with translating_load_errors(spec, path):
            model = WhisperModel(str(path), device=device.type, compute_type=_compute_type(device, dtype))
        return cls(spec, device, dtype, model)

    @property
    def description(self) -> str:
        return f"{self.spec.name} ({self.spec.source}) on {self.device.type}, {self.model.model.compute_type}"

    def preprocess(self, sources: list, options: TranscribeOptions) -> list[np.ndarray]:
        return [load_audio(source) for source in sources]

    def _forward(self, audios: list[np.ndarray], options: TranscribeOptions) -> list:
        language = options.language if self.model.model.is_multilingual else None
        runs = []
        for audio in audios:
            segments, info = self.model.transcribe(audio, beam_size=options.beam_size, vad_filter=options.vad,
                                                   language=language)
            runs.append((list(segments), info))  # the generator does the decoding: drain it here
        return runs

    def postprocess(self, runs: list, audios: list[np.ndarray], options: TranscribeOptions) -> list[Transcript]:
        results = []
        for (segments, info), audio in zip(runs, audios):
            kept = tuple(Segment(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in segments if s.text.strip())
            text = " ".join(s.text for s in kept)
            results.append(Transcript(text, kept, info.language, float(info.language_probability),
                                      len(audio) / SAMPLE_RATE, self.spec.name))
        return results


def _compute_type(device: torch.device, dtype: torch.dtype) -> str:
    """int8 on CPU (CTranslate2's fastest there); the pipeline's float type on CUDA."""
    if device.type != "cuda":
        return "int8"
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")
