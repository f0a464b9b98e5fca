"""What a caption request and its result look like: options with their limits, candidates, and each captioning
family's defaults. Imports no torch, so the UI can build its controls before any model loads."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError

MAX_NEW_TOKENS = 100  # upper bound a user may ask for
MAX_BEAMS = 10
MAX_CANDIDATES = 10


@dataclass(frozen=True)
class CaptionOptions:
    # what comes back
    num_candidates: int = 1  # distinct captions per image, best first
    prefix: str = ""  # conditional captioning: the caption continues this text (BLIP only)
    # length, in new tokens; None = the model's default
    min_new_tokens: int = 0
    max_new_tokens: int | None = None
    repetition_penalty: float = 1.0  # > 1 discourages repeating a token (both decodings)
    # beam search (sample=False); num_beams None = the model's default
    num_beams: int | None = None
    length_penalty: float = 1.0  # > 1 favours longer captions, < 1 shorter ones
    # nucleus sampling (sample=True): each candidate drawn on its own, no beams
    sample: bool = False
    top_p: float = 0.9  # draw from the smallest set of tokens whose probabilities add up to top_p
    temperature: float = 1.0  # < 1 sharper, > 1 more varied
    seed: int | None = None  # same seed and same images -> same candidates; None = fresh randomness

    def verify(self) -> None:
        _whole(self.num_candidates, "The number of candidate captions", 1, MAX_CANDIDATES)
        if self.max_new_tokens is not None:
            _whole(self.max_new_tokens, "The maximum caption length (new tokens)", 1, MAX_NEW_TOKENS)
        _whole(self.min_new_tokens, "The minimum caption length (new tokens)", 0, MAX_NEW_TOKENS)
        if self.max_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise InputError(f"The minimum length ({self.min_new_tokens} new tokens) is more than the maximum "
                             f"({self.max_new_tokens}); lower the minimum or raise the maximum")
        _number(self.repetition_penalty, "The repetition penalty", 1.0, 10.0)
        _number(self.length_penalty, "The length penalty", -10.0, 10.0)
        if not isinstance(self.prefix, str):
            raise InputError(f"The prefix must be text; got {type(self.prefix).__name__}")
        if self.sample:
            if self.num_beams not in (None, 1):
                raise InputError(f"Sampling draws each candidate on its own and uses no beams (got num_beams="
                                 f"{self.num_beams}); set num_beams to 1, or turn sampling off for beam search")
            _number(self.top_p, "top-p", 0.0, 1.0, low_open=True)
            _number(self.temperature, "The temperature", 0.0, 10.0, low_open=True)
            if self.seed is not None:
                _whole(self.seed, "The seed", 0, 2**32 - 1)
            return
        if self.num_beams is not None:
            _whole(self.num_beams, "The number of beams", 1, MAX_BEAMS)
            if self.num_candidates > self.num_beams:
                raise InputError(f"Beam search returns at most one candidate per beam: {self.num_candidates} "
                                 f"candidates need at least {self.num_candidates} beams (got {self.num_beams}); "
                                 "raise the beams, ask for fewer candidates, or use sampling")


def _whole(value, what: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{what} must be a whole number from {low} to {high}; got {value!r}")


def _number(value, what: str, low: float, high: float, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        (low < value if low_open else low <= value) and value <= high)
    if not ok:
        bound = f"more than {low:g}" if low_open else f"from {low:g}"
        raise InputError(f"{what} must be a number {bound} up to {high:g}; got {value!r}")


@dataclass(frozen=True)
class Candidate:
    text: str
    score: float  # mean log-probability per token the captioner gives this caption (0 = certain)


@dataclass(frozen=True)
class Caption:
    """One image's captions, best first by the captioner's score."""

    candidates: tuple[Candidate, ...]

    @property
    def text(self) -> str:
        return self.candidates[0].text

    @property
    def score(self) -> float:
        return self.candidates[0].score


# Per backend, what options left at None become (see ``Captioner.options``); GENERIC for a model of no known family.
GENERIC_DEFAULTS = {"num_beams": 3, "max_new_tokens": 30}
MODEL_DEFAULTS = {
    "blip": GENERIC_DEFAULTS,
    # nlpconnect/vit-gpt2-image-captioning's generation config: 4 beams, max_length 16 (its start token counts)
    "vision-encoder-decoder": {"num_beams": 4, "max_new_tokens": 15},
}
