"""Visual question answering: (image, question) pairs in, answers out."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Pipeline
from .errors import InputError
from .hf import HF_FILES, load_part, load_pretrained, sequence_scores
from .io import load_image
from .registry import ModelSpec


@dataclass(frozen=True)
class AskOptions:
    num_beams: int = 3
    max_new_tokens: int = 10  # answers are a few words

    def verify(self) -> None:
        if not isinstance(self.num_beams, int) or not 1 <= self.num_beams <= 10:
            raise InputError(f"num_beams must be a whole number from 1 to 10; got {self.num_beams!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 50:
            raise InputError(f"max_new_tokens must be from 1 to 50; got {self.max_new_tokens!r}")


@dataclass(frozen=True)
class Answer:
    question: str  # as the model read it (after truncation)
    text: str
    score: float | None  # beam search's length-normalised log-probability; None for greedy decoding
    truncated: bool = False  # the question was longer than the model reads and was cut


class BlipVqa(Pipeline):
    """BLIP VQA: encodes the question against the image, then generates a short answer."""

    Options = AskOptions
    hub_files = HF_FILES

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model, processor):
        super().__init__(spec, device, dtype)
        self.model, self.processor = model, processor
        self.max_question_tokens = int(model.config.text_config.max_position_embeddings)

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "BlipVqa":
        from transformers import BlipForQuestionAnswering, BlipProcessor

        model, path = load_pretrained(spec, BlipForQuestionAnswering, device, dtype)
        return cls(spec, device, dtype, model, load_part(spec, path, BlipProcessor))

    def preprocess(self, pairs: list, options: AskOptions):
        images, questions = [], []
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError(f"Expected (image, question) pairs; got {type(pair).__name__}")
            images.append(load_image(pair[0]))
            questions.append(_clean_question(pair[1]))
        tokenizer = self.processor.tokenizer
        lengths = [len(ids) for ids in tokenizer(questions)["input_ids"]]
        inputs = self.processor(images=images, text=questions, padding=True, truncation=True,
                                max_length=self.max_question_tokens, return_tensors="pt")
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        read = tokenizer.batch_decode(inputs["input_ids"], skip_special_tokens=True)
        truncated = [n > self.max_question_tokens for n in lengths]
        return {name: value.to(self.device) for name, value in inputs.items()}, read, truncated

    def _forward(self, batch, options: AskOptions):
        inputs, _, _ = batch
        return self.model.generate(**inputs, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens,
                                   output_scores=True, return_dict_in_generate=True)

    def postprocess(self, outputs, batch, options: AskOptions) -> list[Answer]:
        _, questions, truncated = batch
        texts = self.processor.batch_decode(outputs.sequences, skip_special_tokens=True)
        scores = sequence_scores(outputs, len(texts))
        return [Answer(q, " ".join(t.split()), s, cut) for q, t, s, cut in zip(questions, texts, scores, truncated)]


def _clean_question(question) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"The question is empty (got {question!r}). Type a question, e.g. 'what color is the shape?'")
    return " ".join(question.split())
