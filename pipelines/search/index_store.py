"""A gallery's nearest-neighbour index for one model: exact for small galleries; for large ones a FAISS index,
saved in the cache directory under a hash of the model key and the images, so a restart does not rebuild it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from . import vector_index


def gallery_index(vectors: np.ndarray, model_key: str, digests: Sequence[str], folder: Path):
    """The index over ``vectors`` (one row per digest, in order): read from ``folder`` when saved, else built."""
    kind = vector_index.choose_kind(len(vectors))
    if kind == "exact":
        return vector_index.build(vectors, kind)
    name = hashlib.sha256("\n".join([model_key, *digests]).encode()).hexdigest()
    path = folder / f"{name[:32]}.faiss"
    if path.is_file():
        return vector_index.FaissIndex.read(path)
    index = vector_index.build(vectors, kind)
    index.save(path)
    return index
