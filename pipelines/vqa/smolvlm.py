"""SmolVLM / SmolVLM2 answering questions: each question written into the registry's prompt ("{question} Answer in
a few words.") beside its image in one user turn; the free-form answer is generated greedily, or with beams for
top_k answers.

Each answer's probability is the model's probability of saying exactly it: the product of its token probabilities,
the end of utterance included (raw model distribution). They need not sum to 1: the model may spread its mass over
answers not shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..caption.base import token_log_probs
from ..chat.one_turn import SmolVlmTurn
from ..core.budget import Deadline, mark_stopped, stopped
from ..core.errors import ModelLoadError
from ..core.limits import limits
from .base import VqaPipeline, clean_question, pair_images
from .options import Answer, AskOptions

DEFAULT_PROMPT = "{question} Answer in a few words."  # where neither the model's entry nor its family names one
QUESTION = "{question}"  # where the question goes in the prompt
QUESTION_TOKENS = 256  # a longer question is cut there (the model reads thousands; a question needs no more)


@dataclass
class _Turns:
    inputs: dict[str, torch.Tensor]  # one left-padded prompt per (image, question) pair, with its image
    questions: list[str]  # as the model read them
    truncated: list[bool]


class SmolVlmVqa(SmolVlmTurn, VqaPipeline):
    def __init__(self, spec, device, dtype, model, processor):
        super().__init__(spec, device, dtype, model, processor)
        self.prompt = self.prompt_template(DEFAULT_PROMPT)
        if self.prompt.count(QUESTION) != 1:
            raise ModelLoadError(
                spec.name,
                f"its registry prompt {self.prompt!r} does not hold {QUESTION} exactly once",
                f"Write {QUESTION} where the question goes in its registry.json prompt",
            )

    @property
    def max_question_tokens(self) -> int:
        return QUESTION_TOKENS

    def preprocess(self, pairs: list, options: AskOptions) -> _Turns:
        images, questions, truncated = pair_images(pairs), [], []
        tokenizer = self.processor.tokenizer
        for _, question in pairs:
            cleaned = clean_question(question, self.spec.name)
            ids = tokenizer(cleaned, add_special_tokens=False)["input_ids"]
            if len(ids) > QUESTION_TOKENS:
                cleaned = tokenizer.decode(ids[:QUESTION_TOKENS], skip_special_tokens=True).strip()
            questions.append(cleaned)
            truncated.append(len(ids) > QUESTION_TOKENS or len(question.strip()) > limits().text_chars)
        inputs = self.encode_turns(images, [self.prompt.replace(QUESTION, q) for q in questions])
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return _Turns({name: value.to(self.device) for name, value in inputs.items()}, questions, truncated)

    def _forward(self, turns: _Turns, options: AskOptions, deadline: Deadline | None = None):
        beams = max(options.num_beams, options.top_k)
        # length_penalty 0: beams are ranked by their answer's total log-probability, comparable across lengths
        search = {"num_beams": beams, "length_penalty": 0.0} if beams > 1 else {}
        if deadline is not None:
            search["max_time"] = deadline.generation_seconds()
        output = self.generate(
            **turns.inputs,
            **search,
            do_sample=False,
            num_return_sequences=options.top_k,
            max_new_tokens=options.max_new_tokens,
            output_logits=True,
            return_dict_in_generate=True,
        )
        return self.answer_only(mark_stopped(output, deadline), turns.inputs)

    def postprocess(self, output, turns: _Turns, options: AskOptions) -> list[Answer]:
        log_probs = token_log_probs(output.sequences, output.logits, getattr(output, "beam_indices", None))
        steps = min(output.sequences.shape[1], log_probs.shape[1])
        totals = _answer_log_probs(log_probs[:, :steps], output.sequences[:, :steps], set(self.eos_token_ids))
        texts = [" ".join(t.split()) for t in self.processor.batch_decode(output.sequences, skip_special_tokens=True)]
        k, cut = options.top_k, stopped(output)
        return [
            Answer(question, _ranked(texts[i * k : (i + 1) * k], totals[i * k : (i + 1) * k]), truncated, cut)
            for i, (question, truncated) in enumerate(zip(turns.questions, turns.truncated))
        ]


def _answer_log_probs(log_probs: torch.Tensor, tokens: torch.Tensor, end_ids: set[int]) -> list[float]:
    """Each row's summed log-probability up to and including its first end token (later positions are padding)."""
    is_end = torch.zeros_like(tokens, dtype=torch.bool)
    for end in end_ids:
        is_end |= tokens == end
    ended_before = (is_end.long().cumsum(dim=1) - is_end.long()) > 0
    return (log_probs.float() * (~ended_before).float()).sum(dim=1).tolist()


def _ranked(texts: list[str], log_probs: list[float]) -> tuple[tuple[str, float], ...]:
    """The answers, most probable first, each with its probability; beams that decode alike add up (they are
    different ways of saying the same words). An empty answer is shown only when no other came back."""
    merged: dict[str, float] = {}
    for text, log_prob in zip(texts, log_probs):
        text = text.rstrip(".").strip()  # a short answer, not a sentence: "Red." reads as "Red"; "." as nothing
        merged[text] = merged.get(text, 0.0) + math.exp(log_prob)
    if len(merged) > 1:
        merged.pop("", None)
    return tuple(sorted(((t, min(p, 1.0)) for t, p in merged.items()), key=lambda item: -item[1]))
