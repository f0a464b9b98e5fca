"""The fusion operators: early fusion combines embeddings before searching ("this photo, but blue"); late fusion
combines the scores that several sources gave the same candidates (a captioner's likelihood and CLIP's image-text
similarity). numpy only."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import InputError


def similarity(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine similarity (Q, C) between rows of unit vectors."""
    return np.atleast_2d(queries) @ np.atleast_2d(candidates).T


def early_fusion(embeddings: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum of unit embeddings (one per modality), renormalised: a single query vector."""
    if len(embeddings) != len(weights) or not embeddings:
        raise InputError(f"Early fusion needs one weight per embedding; got {len(embeddings)} and {len(weights)}")
    fused = sum(w * _unit(e) for e, w in zip(embeddings, weights))
    norm = np.linalg.norm(fused, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise InputError("The weights cancel every embedding out; give at least one modality a non-zero weight")
    return (fused / norm).astype(np.float32)


def late_fusion(scores: Sequence[np.ndarray], weights: Sequence[float], *, rescale: bool = True) -> np.ndarray:
    """Weighted sum of per-candidate scores from several sources.

    With ``rescale`` each source's scores are first mapped to [0, 1] over the candidates, so a source that
    scores in logits does not drown one that scores in cosines.
    """
    if len(scores) != len(weights) or not scores:
        raise InputError(f"Late fusion needs one weight per score list; got {len(scores)} and {len(weights)}")
    total = np.zeros_like(np.asarray(scores[0], dtype=np.float64))
    for source, weight in zip(scores, weights):
        source = np.asarray(source, dtype=np.float64)
        if source.shape != total.shape:
            raise InputError(
                f"Every source must score the same candidates; got shapes {total.shape} and {source.shape}"
            )
        total += weight * (_minmax(source) if rescale else source)
    return total


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max(axis=-1, keepdims=True) - x.min(axis=-1, keepdims=True)
    return np.where(span > 0, (x - x.min(axis=-1, keepdims=True)) / np.where(span > 0, span, 1), 0.5)
