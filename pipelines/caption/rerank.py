"""Re-ranking captions by late fusion: the captioner's own score plus CLIP's image-text similarity.

A captioner's likelihood says how fluent a caption is in the captioner's own style; CLIP says how well the
words match the picture. ``late_fusion`` rescales both over one image's candidates and weights them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..core.budget import Deadline
from ..core.errors import InputError
from ..core.io import load_image
from ..core.limits import IMAGES_ENV, check_count, limits
from ..fusion.operators import late_fusion, similarity
from ..fusion.space import ClipSpace
from .options import Candidate, Caption, RerankOptions

if TYPE_CHECKING:
    from .base import Captioner

NO_TEXT_SIMILARITY = -1.0  # an empty caption matches nothing: the lowest cosine


@dataclass(frozen=True)
class Ranked:
    text: str
    caption_score: float  # the captioner's mean log-probability per token
    similarity: float  # CLIP cosine between the caption and the image
    fused: float  # (1 - weight) * rescaled caption_score + weight * rescaled similarity, in [0, 1]
    stopped: bool = False  # the captioner stopped at the request's time limit: the caption may be unfinished


def check_weight(weight: float) -> float:
    """``weight`` as a float if it is a CLIP weight (0 = the captioner only, 1 = CLIP only), else an InputError."""
    RerankOptions(clip_weight=weight).verify()
    return float(weight)


def rerank(
    candidates: Sequence[Candidate], image_embedding: np.ndarray, space: ClipSpace, weight: float
) -> list[Ranked]:
    """One image's candidates, best first by the fused score. ``image_embedding``: its unit CLIP vector."""
    return rerank_many([candidates], np.atleast_2d(image_embedding), space, weight)[0]


def rerank_many(
    candidate_lists: Sequence[Sequence[Candidate]], image_embeddings: np.ndarray, space: ClipSpace, weight: float
) -> list[list[Ranked]]:
    """``rerank`` for many images at once: one CLIP text pass over every candidate."""
    weight = check_weight(weight)
    if len(candidate_lists) != len(image_embeddings):
        raise InputError(
            f"Give one image embedding per candidate list; got {len(image_embeddings)} embeddings "
            f"and {len(candidate_lists)} lists"
        )
    texts = sorted({c.text for candidates in candidate_lists for c in candidates if c.text.strip()})
    rows = {text: i for i, text in enumerate(texts)}
    text_embeddings = space.embed_texts(texts) if texts else None
    ranked = []
    for candidates, image in zip(candidate_lists, image_embeddings):
        if not candidates:
            ranked.append([])
            continue
        sims = np.array(
            [
                similarity(image, text_embeddings[rows[c.text]])[0, 0] if c.text in rows else NO_TEXT_SIMILARITY
                for c in candidates
            ],
            dtype=np.float64,
        )
        scores = np.array([c.score for c in candidates], dtype=np.float64)
        fused = late_fusion([scores, sims], [1.0 - weight, weight])
        order = sorted(range(len(candidates)), key=lambda i: (-fused[i], -scores[i]))
        ranked.append([Ranked(candidates[i].text, float(scores[i]), float(sims[i]), float(fused[i])) for i in order])
    return ranked


# Images decoded, captioned and embedded per step of a list under a deadline: it is checked between steps, so a
# request ends within about one step of its limit (a few photos' decoding, one short generation), not a whole batch.
CHUNK_IMAGES = 4


def caption_and_rerank(
    captioner: Captioner,
    images: Sequence,
    space: ClipSpace,
    weight: float,
    progress: Callable[[float], None] | None = None,
    deadline: Deadline | float | None = None,
    **options,
) -> list[list[Ranked]]:
    """Caption ``images`` and re-rank each one's candidates; one batched captioner and CLIP pass per batch (of
    CHUNK_IMAGES under a deadline).

    ``options`` are the captioner's (num_candidates, sample, ...); ``progress`` gets the fraction done. At most
    limits().images_per_request images. ``deadline`` (a Deadline, or seconds from now; None: no limit): once it
    has passed, no further batch starts (the first always runs, its generation bounded by the deadline), so the
    list may hold only the first images' results; compare its length with ``len(images)`` (``budget.stopped_notice``
    says what to tell the visitor).
    """
    weight = check_weight(weight)
    check_count("images", len(images), limits().images_per_request, IMAGES_ENV)
    checked = captioner.options(**options)  # refuse bad options before decoding any image
    deadline = Deadline.of(deadline)
    results: list[list[Ranked]] = []
    step = captioner.batch_size if deadline is None else min(captioner.batch_size, CHUNK_IMAGES)
    for start in range(0, len(images), step):
        if results and deadline is not None and deadline.stop_before_next_step():
            break
        # Decoded once for both models, one at a time, each scaled down at decode (io.load_image): a batch holds
        # at most `step` images of limits().image_side pixels, never a full-size photo.
        batch = [load_image(image) for image in images[start : start + step]]
        captions: list[Caption] = captioner.run(batch, checked, deadline=deadline)  # counted above, as a whole
        ranked = rerank_many([c.candidates for c in captions], space.embed_images(batch), space, weight)
        del batch
        results += [
            [replace(r, stopped=True) for r in rows] if caption.stopped else rows
            for caption, rows in zip(captions, ranked)
        ]
        if progress is not None:
            progress(len(results) / len(images))
    return results
