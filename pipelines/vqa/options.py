"""What a question request and its answer look like; imports no torch, so the UI can use them before a model loads."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError

MAX_TOP_K = 10  # answers a caller may ask for


@dataclass(frozen=True)
class AskOptions:
    top_k: int = 5  # ranked answers per question
    # BLIP only: beam search width (at least top_k beams are searched) and answer length
    num_beams: int = 5
    max_new_tokens: int = 10  # answers are a few words

    def verify(self) -> None:
        if not isinstance(self.top_k, int) or not 1 <= self.top_k <= MAX_TOP_K:
            raise InputError(f"top_k must be a whole number from 1 to {MAX_TOP_K}; got {self.top_k!r}")
        if not isinstance(self.num_beams, int) or not 1 <= self.num_beams <= 10:
            raise InputError(f"num_beams must be a whole number from 1 to 10; got {self.num_beams!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 50:
            raise InputError(f"max_new_tokens must be from 1 to 50; got {self.max_new_tokens!r}")


@dataclass(frozen=True)
class Answer:
    """Ranked answers to one question, most likely first.

    BLIP: the top-k beam answers, their sequence probabilities normalised over the answers shown (they sum to 1).
    ViLT: the top-k of its fixed answers, each with the probability the classifier gives it on its own (sigmoid,
    as it was trained), so they need not sum to 1.
    """

    question: str  # as the model read it (after truncation; words its tokenizer does not know are dropped)
    ranked: tuple[tuple[str, float], ...]  # (answer, probability)
    truncated: bool = False  # the question was longer than the model reads and was cut

    @property
    def text(self) -> str:
        return self.ranked[0][0] if self.ranked else ""

    @property
    def score(self) -> float:
        return self.ranked[0][1] if self.ranked else 0.0
