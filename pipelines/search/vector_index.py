"""Nearest-neighbour search over unit vectors, with the index kind chosen by size (the CLI that indexes a folder
is ``python -m pipelines.index``).

Small galleries are searched exactly (one matrix product). Past BRUTE_FORCE_MAX vectors a FAISS index answers
instead: HNSW while the graph is quick to build, IVF (inverted lists of fp16 vectors) beyond that.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

BRUTE_FORCE_MAX = 10_000  # vectors; up to here one exact matrix product answers in a few ms
HNSW_MAX = 50_000  # vectors; HNSW needs no training but builds at ~1 ms per 512-d vector on 2 cores
HNSW_NEIGHBOURS = 32  # graph degree M
HNSW_EF_BUILD = 64  # candidates kept while inserting
HNSW_EF_SEARCH = 96  # candidates kept while searching (recall vs latency)
IVF_TRAIN_PER_LIST = 64  # k-means training vectors per inverted list (a sample, not the whole set)
IVF_KMEANS_ITERATIONS = 10


def choose_kind(count: int) -> str:
    """exact, hnsw or ivf for an index of ``count`` vectors."""
    if count <= BRUTE_FORCE_MAX:
        return "exact"
    return "hnsw" if count <= HNSW_MAX else "ivf"


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: the power of two nearest sqrt(count), 16 to 4096."""
    return int(min(4096, max(16, 2 ** round(math.log2(max(count, 1)) / 2))))


def ivf_probes(lists: int) -> int:
    """Lists visited per query: 1/16 of them, at least 8 (recall >= 0.95 on clustered embeddings)."""
    return min(lists, max(8, lists // 16))


class ExactIndex:
    """Every vector scored by one matrix product; ties keep insertion order."""

    kind = "exact"

    def __init__(self, dim: int):
        self.dim = dim
        self._chunks: list[np.ndarray] = []
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def train(self, sample: np.ndarray) -> None:
        pass

    def add(self, vectors: np.ndarray) -> None:
        self._chunks.append(_as_rows(vectors, self.dim))

    @property
    def vectors(self) -> np.ndarray:
        if self._chunks:
            self._vectors = np.concatenate([self._vectors, *self._chunks])
            self._chunks = []
        return self._vectors

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (Q, min(k, len)), best first."""
        scores = _as_rows(queries, self.dim) @ self.vectors.T
        k = min(k, scores.shape[1])
        if k < scores.shape[1]:
            candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        ids = np.empty((len(scores), k), dtype=np.int64)
        for row, (cands, row_scores) in enumerate(zip(candidates, scores)):
            order = np.lexsort((cands, -row_scores[cands]))  # by score, then by id
            ids[row] = cands[order][:k]
        return np.take_along_axis(scores, ids, axis=1), ids


class FaissIndex:
    """A FAISS HNSW or IVF index over inner products (= cosine for unit vectors)."""

    def __init__(self, kind: str, dim: int, expected: int):
        import faiss

        self.kind, self.dim = kind, dim
        if kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = HNSW_EF_BUILD
            self.index.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind == "ivf":
            lists = ivf_lists(expected)
            self._quantizer = faiss.IndexFlatIP(dim)  # kept alive: the IVF index refers to it
            self.index = faiss.IndexIVFScalarQuantizer(
                self._quantizer, dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            self.index.cp.niter = IVF_KMEANS_ITERATIONS
            self.index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
            self.index.nprobe = ivf_probes(lists)
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}; expected hnsw or ivf")

    def train(self, sample: np.ndarray) -> None:
        if not self.index.is_trained:
            self.index.train(_as_rows(sample, self.dim))

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(_as_rows(vectors, self.dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        scores, ids = self.index.search(_as_rows(queries, self.dim), k)
        return scores, ids  # an id of -1 means fewer than k were found (only with tiny IVF lists)

    def save(self, path: Path) -> None:
        import faiss

        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        faiss.write_index(self.index, str(temporary))
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path) -> "FaissIndex":
        import faiss

        index = faiss.read_index(str(path))
        self = cls.__new__(cls)
        self.kind = "hnsw" if isinstance(index, faiss.IndexHNSW) else "ivf"
        self.dim, self.index = index.d, index
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = HNSW_EF_SEARCH
        return self


def new_index(kind: str, dim: int, expected: int = 0):
    """An empty index; call ``train`` with a sample (IVF needs one), then ``add`` in chunks."""
    return ExactIndex(dim) if kind == "exact" else FaissIndex(kind, dim, expected)


def build(vectors: np.ndarray, kind: str = "auto"):
    """An index over ``vectors`` (N, D) of the kind ``choose_kind`` picks for N, or the one asked for."""
    vectors = _as_rows(vectors, vectors.shape[-1] if vectors.ndim else 0)
    kind = choose_kind(len(vectors)) if kind == "auto" else kind
    index = new_index(kind, vectors.shape[1], len(vectors))
    index.train(vectors)
    index.add(vectors)
    return index


def recall_at(k: int, approximate: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact top-k ids that the approximate search also returned."""
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approximate, exact)]))


def _as_rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if vectors.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {vectors.shape}")
    return vectors
