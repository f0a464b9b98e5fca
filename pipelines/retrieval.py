"""Text-to-image search over a gallery, in the shared CLIP space."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import runtime
from .base import Pipeline
from .errors import InputError
from .fusion import OPEN_CLIP_FILES, ClipSpace, similarity
from .registry import PROJECT_ROOT, ModelSpec

GALLERY_DIRS = (PROJECT_ROOT / "assets/examples/photos", PROJECT_ROOT / "assets/examples/toy")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_TOP_K = 100


@dataclass(frozen=True)
class Hit:
    path: str
    label: str  # file name without its suffix, underscores as spaces
    score: float  # cosine similarity in the CLIP space


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class SearchOptions:
    top_k: int = 5

    def verify(self) -> None:
        if not isinstance(self.top_k, int) or not 1 <= self.top_k <= MAX_TOP_K:
            raise InputError(f"top_k must be a whole number from 1 to {MAX_TOP_K}; got {self.top_k!r}")


def bundled_gallery() -> list[Path]:
    """The example photos and toy scenes shipped in assets/examples."""
    return sorted(p for d in GALLERY_DIRS if d.is_dir() for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class Gallery:
    """Image paths and their CLIP embeddings, computed once on first search."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)
        self._embeddings: np.ndarray | None = None
        self._lock = threading.Lock()

    def embeddings(self, space: ClipSpace) -> np.ndarray:
        with self._lock:
            if self._embeddings is None:
                self._embeddings = space.embed_images(self.paths)
            return self._embeddings


class SearchPipeline(Pipeline):
    """Text queries in, the top-k gallery images out (one SearchResult per query)."""

    Options = SearchOptions
    hub_files = OPEN_CLIP_FILES

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, space: ClipSpace, gallery: Gallery):
        super().__init__(spec, device, dtype)
        self.space, self.gallery = space, gallery

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "SearchPipeline":
        space = runtime.cache.get(("clip", spec.source, str(device), str(dtype)),
                                  lambda: ClipSpace.load(spec, device, dtype))
        return cls(spec, device, dtype, space, Gallery(bundled_gallery()))

    def preprocess(self, queries: list, options: SearchOptions) -> list[str]:
        if not self.gallery.paths:
            raise InputError("The gallery is empty: there are no images to search. Add images to assets/examples")
        return [_clean_query(q) for q in queries]

    def _forward(self, queries: list[str], options: SearchOptions) -> np.ndarray:
        return similarity(self.space.embed_texts(queries), self.gallery.embeddings(self.space))

    def postprocess(self, scores: np.ndarray, queries: list[str], options: SearchOptions) -> list[SearchResult]:
        k = min(options.top_k, len(self.gallery.paths))
        results = []
        for query, row in zip(queries, scores):
            best = np.argsort(-row, kind="stable")[:k]
            hits = tuple(Hit(str(self.gallery.paths[i]), _label(self.gallery.paths[i]), float(row[i])) for i in best)
            results.append(SearchResult(query, hits))
        return results


def _clean_query(query) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"The search query is empty (got {query!r}). Type a few words, e.g. 'a red circle'")
    return " ".join(query.split())


def _label(path: Path) -> str:
    return path.stem.replace("_", " ")
