"""What a question request and its answer look like; imports no torch, so the UI can use them before a model loads."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.options import option, verify

MAX_TOP_K = 10  # answers a caller may ask for


@dataclass(frozen=True)
class AskOptions:
    top_k: int = option(5, low=1, high=MAX_TOP_K, whole=True, help="ranked answers per question")
    # The answer generators (BLIP, SmolVLM): beam search width (at least top_k beams are searched) and answer length
    num_beams: int = option(5, low=1, high=10, whole=True, help="BLIP, SmolVLM: beams searched (at least top_k)")
    max_new_tokens: int = option(10, low=1, high=50, whole=True, help="BLIP, SmolVLM: the longest answer, in tokens")

    def verify(self) -> None:
        verify(self)


@dataclass(frozen=True)
class Answer:
    """Ranked answers to one question, most likely first.

    BLIP: the top-k beam answers, their sequence probabilities normalised over the answers shown (they sum to 1).
    ViLT: the top-k of its fixed answers, each with the probability the classifier gives it on its own (sigmoid,
    as it was trained), so they need not sum to 1.
    SmolVLM: free-form short answers from beam search, each with the probability of its tokens (the product of
    their probabilities, the end of the answer included), so they need not sum to 1.
    """

    question: str  # as the model read it (after truncation; words its tokenizer does not know are dropped)
    ranked: tuple[tuple[str, float], ...]  # (answer, probability)
    truncated: bool = False  # the question was longer than the model reads and was cut
    stopped: bool = False  # generation reached the request's time limit: the answer may be unfinished

    @property
    def text(self) -> str:
        return self.ranked[0][0] if self.ranked else ""

    @property
    def score(self) -> float:
        return self.ranked[0][1] if self.ranked else 0.0
