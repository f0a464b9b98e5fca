"""Speech to text with Whisper: one interface, two backends.

    faster.py               faster-whisper (CTranslate2): int8 on CPU, fp16 on CUDA, Silero VAD built in
    transformers_whisper.py transformers WhisperForConditionalGeneration: fp32 on CPU, fp16 + batched windows on CUDA
    base.py                 what they share: input decoding, option checks, tidy segments, the Transcript
    chunks.py               30 s windows for long recordings (transformers backend)
    untrained.py            a Whisper checkpoint with random weights, for tests and benchmarks
    subtitles.py            a Transcript as .srt, .vtt and .txt files

Which backend serves a model follows its checkpoint's format; the registry names it (registry.json "families").
"""

from .options import LANGUAGES, TASKS, TranscribeOptions
from .results import Segment, Transcript, Word

__all__ = ["LANGUAGES", "TASKS", "TranscribeOptions", "Segment", "Transcript", "Word"]
