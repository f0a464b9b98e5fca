"""Whisper in transformers (WhisperForConditionalGeneration + WhisperProcessor): half precision and many windows
per forward pass on CUDA, fp32 on CPU. Long recordings are cut into 30 s windows by chunks.py."""

from __future__ import annotations

import numpy as np
import torch

from ..core.budget import Deadline
from ..core.checkpoints import TRANSFORMERS
from ..core.hf import load_part, load_pretrained
from ..core.io import SAMPLE_RATE
from ..core.registry import ModelSpec
from .base import Report, SpeechPipeline
from .chunks import Chunk, overlapping_windows
from .options import TranscribeOptions
from .results import Decoding, Segment, Word

TIME_PRECISION = 0.02  # seconds per timestamp token
MULTILINGUAL_VOCAB = 51865  # tokens: multilingual Whisper vocabularies have at least this many, English-only 51864
WINDOWS_PER_BATCH = {"cuda": 16}  # windows decoded together; elsewhere one at a time, so progress moves often


class TransformersWhisper(SpeechPipeline):
    hub_files = TRANSFORMERS
    engine = "transformers"

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model, processor):
        super().__init__(spec, device, dtype)
        self.model, self.processor = model, processor
        config = model.generation_config
        self.timestamp_begin = config.no_timestamps_token_id + 1  # timestamp tokens follow <|notimestamps|>
        self.windows_per_batch = WINDOWS_PER_BATCH.get(device.type, 1)

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "TransformersWhisper":
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        model, path = load_pretrained(spec, WhisperForConditionalGeneration, device, dtype)
        return cls(spec, device, dtype, model, load_part(spec, path, WhisperProcessor))

    @property
    def multilingual(self) -> bool:
        flag = getattr(self.model.generation_config, "is_multilingual", None)
        return flag if flag is not None else self.model.config.vocab_size >= MULTILINGUAL_VOCAB

    @property
    def compute_type(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def decode(
        self,
        audio: np.ndarray,
        windows: list[Chunk] | None,
        options: TranscribeOptions,
        report: Report,
        deadline: Deadline | None = None,
    ) -> Decoding:
        chunks = windows or overlapping_windows(len(audio))
        language, probability = (options.language, 1.0) if self.multilingual else ("en", 1.0)
        segments: list[Segment] = []
        for first in range(0, len(chunks), self.windows_per_batch):
            batch = chunks[first : first + self.windows_per_batch]
            # Past the deadline no further batch starts; what earlier windows owned is kept
            if first and deadline is not None and deadline.stop_before_next_step():
                stopped = batch[0].owns_from or batch[0].start / SAMPLE_RATE  # VAD windows own all they hold
                return Decoding(segments, language, probability, stopped_at=stopped)
            inputs = self._features(audio, batch)
            if language is None:  # detected once, on the first window, as faster-whisper does
                language, probability = self._detect_language(inputs["input_features"][:1])
            output = self.model.generate(**inputs, **self._generate_options(options, language))
            sequences = output["sequences"] if isinstance(output, dict) else output
            times = output.get("token_timestamps") if isinstance(output, dict) else None
            for row, chunk in enumerate(batch):
                decoded = self._segments(sequences[row].tolist(), None if times is None else times[row].tolist(), chunk)
                segments.extend(s for s in decoded if chunk.owns(s.start))
            report(batch[-1].end / SAMPLE_RATE)
        return Decoding(segments, language, probability)

    def _features(self, audio: np.ndarray, chunks: list[Chunk]) -> dict[str, torch.Tensor]:
        inputs = self.processor.feature_extractor(
            [audio[c.start : c.end] for c in chunks],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            return_attention_mask=True,
        )
        return {
            "input_features": inputs["input_features"].to(self.device, self.dtype),
            "attention_mask": inputs["attention_mask"].to(self.device),
        }

    def _generate_options(self, options: TranscribeOptions, language: str) -> dict:
        # One generate pass per window: windows are at most 30 s, and an unfinished last segment runs to the window's
        # end (VAD windows end in silence; overlapping windows hand it to the next).
        kwargs = {
            "return_timestamps": True,
            "force_unique_generate_call": True,
            "num_beams": options.beam_size,
            "return_token_timestamps": options.word_timestamps,
        }
        if self.multilingual:
            kwargs.update(task=options.task, language=language)
        if options.prompt:
            kwargs["prompt_ids"] = torch.as_tensor(self.processor.get_prompt_ids(options.prompt), device=self.device)
        return kwargs

    def _detect_language(self, features: torch.Tensor) -> tuple[str, float]:
        """The most likely language token after <|startoftranscript|>, and its probability among languages."""
        config = self.model.generation_config
        codes = {token_id: token.strip("<|>") for token, token_id in config.lang_to_id.items()}
        start = torch.tensor([[config.decoder_start_token_id]], device=self.device)
        logits = self.model(input_features=features, decoder_input_ids=start).logits[0, -1]
        probabilities = logits[list(codes)].float().softmax(-1)
        best = int(probabilities.argmax())
        return list(codes.values())[best], float(probabilities[best])

    def _segments(self, tokens: list[int], times: list[float] | None, chunk: Chunk) -> list[Segment]:
        """'<|0.00|> text <|2.40|><|2.40|> text <|5.00|>' as Segments in the recording's time."""
        eos = self.processor.tokenizer.eos_token_id
        start_token = self.model.generation_config.decoder_start_token_id
        first = len(tokens) - tokens[::-1].index(start_token) if start_token in tokens else 0  # after any prompt
        segments, start, text = [], 0.0, []
        for index in range(first, len(tokens)):
            token = tokens[index]
            if token >= self.timestamp_begin:
                seconds = (token - self.timestamp_begin) * TIME_PRECISION
                if text:
                    segments.append(self._segment(start, seconds, tokens, text, times, chunk))
                    text = []
                start = seconds
            elif token < eos:
                text.append(index)
        if text:  # the window ended mid-segment: it runs to the window's end
            segments.append(self._segment(start, (chunk.end - chunk.start) / SAMPLE_RATE, tokens, text, times, chunk))
        return segments

    def _segment(
        self, start: float, end: float, tokens: list[int], text: list[int], times: list[float] | None, chunk: Chunk
    ) -> Segment:
        decode = self.processor.tokenizer.decode
        words = () if times is None else self._words(tokens, text, times, chunk.offset)
        return Segment(chunk.offset + start, chunk.offset + end, decode([tokens[i] for i in text]), words)

    def _words(self, tokens: list[int], text: list[int], times: list[float], offset: float) -> tuple[Word, ...]:
        """Tokens grouped into words (a word starts at a token with a leading space), timed by the aligner."""
        decode = self.processor.tokenizer.decode
        groups: list[list[int]] = []
        for index in text:
            if not groups or decode([tokens[index]]).startswith(" "):
                groups.append([index])
            else:
                groups[-1].append(index)
        last = len(times) - 1
        return tuple(
            Word(
                offset + times[group[0]],
                offset + times[min(group[-1] + 1, last)],
                decode([tokens[i] for i in group]),
                None,
            )
            for group in groups
        )
