"""What a caption request and its result look like: options with their limits, and candidates (each model's
defaults, e.g. beams and length, are in the registry). Imports no torch, so the UI can build its controls before any
model loads."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError
from ..core.limits import TEXT_LIMIT
from ..core.options import option, verify

MAX_NEW_TOKENS = 100  # upper bound a user may ask for
MAX_BEAMS = 10
MAX_CANDIDATES = 10


@dataclass(frozen=True)
class CaptionOptions:
    # what comes back
    num_candidates: int = option(
        1,
        low=1,
        high=MAX_CANDIDATES,
        whole=True,
        what="The number of candidate captions",
        help="captions per image (beam search: at most one per beam)",
    )
    prefix: str = option(
        "", what="The prefix", max_chars=TEXT_LIMIT, help="the caption continues this text (BLIP only)"
    )
    # length, in new tokens; None = the model's default
    min_new_tokens: int = option(
        0,
        low=0,
        high=MAX_NEW_TOKENS,
        whole=True,
        what="The minimum caption length (new tokens)",
        help="the caption is at least this long",
    )
    max_new_tokens: int | None = option(
        None,
        low=1,
        high=MAX_NEW_TOKENS,
        whole=True,
        optional=True,
        what="The maximum caption length (new tokens)",
        help="the caption stops at this length",
    )
    repetition_penalty: float = option(
        1.0,
        low=1.0,
        high=10.0,
        slider=(1, 2),
        step=0.05,
        what="The repetition penalty",
        help="> 1 discourages repeated words",
    )
    # beam search (sample=False); num_beams None = the model's default
    num_beams: int | None = option(
        None, low=1, high=MAX_BEAMS, whole=True, optional=True, what="The number of beams", help="1 = greedy"
    )
    length_penalty: float = option(
        1.0,
        low=-10.0,
        high=10.0,
        slider=(-2, 2),
        step=0.1,
        what="The length penalty",
        help="> 1 favours longer captions, < 1 shorter",
    )
    # nucleus sampling (sample=True): each candidate drawn on its own, no beams
    sample: bool = option(False, what="sample", help="draw each candidate by nucleus sampling instead of beam search")
    top_p: float = option(
        0.9,
        low=0.0,
        high=1.0,
        low_open=True,
        slider=(0.05, 1),
        step=0.05,
        what="top-p",
        help="sample from the likeliest tokens that add up to this probability",
    )
    temperature: float = option(
        1.0,
        low=0.0,
        high=10.0,
        low_open=True,
        slider=(0.1, 2),
        step=0.1,
        what="The temperature",
        help="< 1 safer, > 1 more varied",
    )
    seed: int | None = option(
        None,
        low=0,
        high=2**32 - 1,
        whole=True,
        optional=True,
        what="The seed",
        help="same seed, same candidates; none = fresh randomness",
    )

    def verify(self) -> None:
        verify(self)
        if self.max_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise InputError(
                f"The minimum length ({self.min_new_tokens} new tokens) is more than the maximum "
                f"({self.max_new_tokens}); lower the minimum or raise the maximum"
            )
        if self.sample:
            if self.num_beams not in (None, 1):
                raise InputError(
                    f"Sampling draws each candidate on its own and uses no beams (got num_beams="
                    f"{self.num_beams}); set num_beams to 1, or turn sampling off for beam search"
                )
            return
        if self.num_beams is not None and self.num_candidates > self.num_beams:
            raise InputError(
                f"Beam search returns at most one candidate per beam: {self.num_candidates} "
                f"candidates need at least {self.num_candidates} beams (got {self.num_beams}); "
                "raise the beams, ask for fewer candidates, or use sampling"
            )


@dataclass(frozen=True)
class RerankOptions:
    clip_weight: float = option(
        0.3,
        low=0,
        high=1,
        step=0.05,
        what="The CLIP weight",  # the captioner leads
        help="0 = the captioner's score only, 1 = CLIP image-text similarity only",
    )

    def verify(self) -> None:
        verify(self)


@dataclass(frozen=True)
class Candidate:
    text: str
    score: float  # mean log-probability per token the captioner gives this caption (0 = certain)


@dataclass(frozen=True)
class Caption:
    """One image's captions, best first by the captioner's score."""

    candidates: tuple[Candidate, ...]
    stopped: bool = False  # generation reached the request's time limit: the captions may be unfinished

    @property
    def text(self) -> str:
        return self.candidates[0].text

    @property
    def score(self) -> float:
        return self.candidates[0].score
