"""Embeddings on disk: one SQLite file, keyed by (model key, image digest), so adding the same image again or
restarting the app encodes nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

SQLITE_MAX_PARAMETERS = 500  # digests per SELECT: SQLite limits the parameters of one statement


class EmbeddingCache:
    """Embeddings by (model key, image digest) in one SQLite file; safe across threads and processes."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=60)) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings "
                "(model TEXT, digest TEXT, vector BLOB, PRIMARY KEY (model, digest))"
            )
            with db:  # one transaction
                yield db

    def get(self, model: str, digests: Sequence[str]) -> dict[str, np.ndarray]:
        """{digest: vector} for the digests cached under ``model`` (the others are missing from the result)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        with self._db() as db:
            for start in range(0, len(unique), SQLITE_MAX_PARAMETERS):
                chunk = unique[start : start + SQLITE_MAX_PARAMETERS]
                rows = db.execute(
                    f"SELECT digest, vector FROM embeddings WHERE model = ? AND digest IN "
                    f"({','.join('?' * len(chunk))})",
                    [model, *chunk],
                )
                found.update((digest, np.frombuffer(blob, dtype=np.float32)) for digest, blob in rows)
        return found

    def put(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Stores {digest: vector} under ``model`` (float32), replacing what was there."""
        with self._db() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                [(model, d, np.asarray(v, dtype=np.float32).tobytes()) for d, v in vectors.items()],
            )
