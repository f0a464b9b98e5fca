"""A catalogue: the nearest-neighbour index built from an index job's Parquet shards, searched read-only.

    python -m pipelines.jobs build OUT      # OUT/index/: vectors (FAISS, or .npy when small), ids.arrow, catalogue.json

The index kind is chosen by size as for the app's galleries (``vector_index.choose_kind``: exact, HNSW, IVF). Ids
are rows of ``ids.arrow`` (path and SHA-256, an Arrow file); the app opens both memory-mapped (``Catalogue``), so a
million-image catalogue costs the pages its queries touch, not its size. Images with the same content are indexed
once, under the first path that held them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np

from ..core import registry, runtime
from ..core.budget import Deadline
from ..core.errors import InputError, PipelineError
from ..fusion.space import ClipSpace
from ..search import vector_index
from ..search.gallery import IMAGE_SUFFIXES, Gallery, Item, Matches, Report
from ..search.uploads import label
from . import shards
from .sources import is_local

INDEX_FOLDER = "index"  # in a job's OUT folder
INFO, IDS, FAISS_FILE, EXACT_FILE = "catalogue.json", "ids.arrow", "vectors.faiss", "vectors.npy"
TRAINING_SAMPLE_SEED = 0  # which vectors train an IVF index: the same ones on every build


@dataclass(frozen=True)
class CatalogueInfo:
    model: str  # ClipSpace.key of the embeddings (source@fingerprint/dtype): queries must come from the same model
    kind: str  # exact, hnsw or ivf
    count: int  # vectors (distinct images)
    dim: int
    rows: int  # rows read from the shards, failures and duplicates included
    failures: int  # rows with an error: not indexed
    seconds: float  # to build


def build_catalogue(out: Path, *, kind: str = "auto", log: Callable[[str], None] | None = None) -> CatalogueInfo:
    """Reads the index job's shards in ``out`` and writes ``out/index``: the vectors' index and the id -> path table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    log = log or (lambda line: None)
    started = time.perf_counter()
    out = Path(out).expanduser()
    manifest = shards.read_manifest(out)
    if manifest is not None and manifest.task != "index":
        raise InputError(f"'{out}' holds {manifest.task} shards; a catalogue is built from an index job's shards")
    files = shards.shard_files(out)
    if not files:
        raise InputError(f"'{out}' holds no finished shards. Run `python -m pipelines.jobs index SOURCE {out}` first")
    # Pass 1, without the vectors: which rows are indexed (read, not failed, content not seen before)
    keep, paths, digests, models, seen, rows, failures = [], [], [], set(), set(), 0, 0
    for file in files:
        table = pq.read_table(file, columns=["path", "sha256", "model", "error"])
        rows += table.num_rows
        ok = pc.is_null(table.column("error")).to_numpy(zero_copy_only=False)
        failures += int((~ok).sum())
        mask = np.zeros(table.num_rows, dtype=bool)
        for i, (path, sha) in enumerate(zip(table.column("path").to_pylist(), table.column("sha256").to_pylist())):
            if ok[i] and sha not in seen:
                seen.add(sha)
                mask[i] = True
                paths.append(path)
                digests.append(sha)
        models.update(table.filter(pa.array(ok)).column("model").unique().to_pylist())
        keep.append(mask)
    if not paths:
        raise InputError(f"No image in '{out}' could be indexed: every row has an error (see the error column)")
    if len(models) > 1:
        raise InputError(f"The shards in '{out}' were made with several models ({', '.join(sorted(models))})")
    [model] = models
    kind = vector_index.choose_kind(len(paths)) if kind == "auto" else kind
    log(
        f"building the {kind} index over {len(paths):,} images ({failures:,} failed, {rows - failures - len(paths):,} "
        "duplicates)"
    )

    def vectors():  # pass 2 (and 3 for IVF): the kept vectors, shard by shard, in id order
        for file, mask in zip(files, keep):
            column = pq.read_table(file, columns=["embedding"]).column("embedding").combine_chunks()
            chosen = column.filter(pa.array(mask))
            yield np.asarray(chosen.flatten().to_numpy(), dtype=np.float32).reshape(len(chosen), -1)

    folder = out / INDEX_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "exact":
        matrix = np.concatenate(list(vectors()))
        dim = matrix.shape[1]
        temporary = folder / f".{EXACT_FILE}.tmp"
        with temporary.open("wb") as f:
            np.save(f, matrix)
        temporary.replace(folder / EXACT_FILE)
    else:
        dim = next(vectors()).shape[1]
        index = vector_index.new_index(kind, dim, len(paths))
        if kind == "ivf":
            index.train(_training_sample(vectors(), len(paths), index))
        for chunk in vectors():
            index.add(chunk)
        index.save(folder / FAISS_FILE)
    table = pa.table({"path": pa.array(paths, pa.string()), "sha256": pa.array(digests, pa.string())})
    temporary = folder / f".{IDS}.tmp"
    with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    temporary.replace(folder / IDS)
    info = CatalogueInfo(model, kind, len(paths), int(dim), rows, failures, time.perf_counter() - started)
    shards.write_atomically(folder / INFO, json.dumps(asdict(info), indent=1).encode())
    log(f"catalogue written to {folder} in {info.seconds:.1f} s")
    return info


def is_current(out: Path) -> bool:
    """Whether ``out/index`` was built after the last of ``out``'s shards was written (nothing to rebuild)."""
    info, files = Path(out) / INDEX_FOLDER / INFO, shards.shard_files(out)
    return info.is_file() and bool(files) and info.stat().st_mtime_ns > max(f.stat().st_mtime_ns for f in files)


def _training_sample(chunks, count: int, index) -> np.ndarray:
    """A random sample of the vectors, as many as the IVF index's k-means reads (the rest would be ignored)."""
    wanted = vector_index.IVF_TRAIN_PER_LIST * index.index.nlist
    rng = np.random.default_rng(TRAINING_SAMPLE_SEED)
    rate = min(1.0, wanted / count)
    return np.concatenate([chunk[rng.random(len(chunk)) < rate] for chunk in chunks])


class Catalogue(Gallery):
    """A built catalogue as a read-only gallery: searched like any gallery (text, image, composed queries), with
    the vectors and the id table memory-mapped. Its hits' paths are as the job read them: a server may or may
    not be able to read them."""

    def __init__(self, folder: Path):
        folder = Path(folder).expanduser()
        if (folder / INDEX_FOLDER / INFO).is_file():
            folder = folder / INDEX_FOLDER  # the job's OUT folder was given
        if not (folder / INFO).is_file():
            raise InputError(
                f"There is no catalogue at '{folder}'. Build one with `python -m pipelines.jobs build OUT` from an "
                "index job's output folder, and give that folder"
            )
        super().__init__(folder.parent.name if folder.name == INDEX_FOLDER else folder.name)
        self.folder = folder
        self.info = CatalogueInfo(**json.loads((folder / INFO).read_text()))
        self._opened = None

    def __len__(self) -> int:
        return self.info.count

    def __getstate__(self) -> dict:
        return {"folder": self.folder}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"])

    def _open(self):
        """(index, ids): the index and the id table, memory-mapped, opened on the first search."""
        import pyarrow as pa

        with self._lock:
            if self._opened is None:
                ids = pa.ipc.open_file(pa.memory_map(str(self.folder / IDS))).read_all()
                self._opened = (_read_index(self.folder, self.info), ids)
            return self._opened

    def _check_model(self, space: ClipSpace) -> None:
        built, asked = self.info.model.rpartition("/")[0], space.key.rpartition("/")[0]  # any precision will do
        if built != asked:
            raise InputError(
                f"The catalogue '{self.name}' was built with another model than {space.spec.name}. Search it with "
                f"the model it was built with{_built_with(built.partition('@')[0])}"
            )

    def prepare(self, space: ClipSpace, *, progress=None, deadline: Deadline | None = None) -> Report:
        self._check_model(space)
        return Report(cached=len(self), index_kind=self.info.kind)

    def find(self, space: ClipSpace, queries: np.ndarray, k: int, *, deadline: Deadline | None = None) -> Matches:
        self._check_model(space)
        index, ids = self._open()
        scores, found = index.search(queries, k)
        path, sha = ids.column("path"), ids.column("sha256")
        rows = [
            [
                (Item(sha[int(i)].as_py(), path[int(i)].as_py(), result_label(path[int(i)].as_py())), float(s))
                for s, i in zip(row_scores, row_ids)
                if i >= 0
            ]
            for row_scores, row_ids in zip(scores, found)
        ]
        return Matches(rows, len(self))

    def add_uploads(self, files, address=None) -> Report:
        raise InputError(f"The catalogue '{self.name}' is read-only. Add images to it by re-running its index job")

    def clear(self) -> int:
        return 0  # nothing of a catalogue is ever deleted from the app


def _built_with(source: str) -> str:
    """How a refusal names the model a catalogue was built with: " (its source)", or in public mode its registry
    name only (a source can be a directory on the server), or nothing when no registry entry has that source."""
    if not runtime.settings().public:
        return f" ({source})"
    names = [name for name in registry.available_models("search") if _source("search", name) == source]
    return f" ({names[0]})" if names else ""


def _source(task: str, name: str) -> str | None:
    try:
        return registry.resolve(task, name, runtime.settings().profile).source
    except PipelineError:  # an entry another profile or a broken registry cannot resolve: not this catalogue's
        return None


def result_label(path: str) -> str:
    """What a catalogue hit is called: its file name without the suffix; for a URL, from the URL's path only (never
    its user, password, query or fragment, where signed URLs keep their tokens)."""
    return label(path if is_local(path) else urlsplit(path).path) or "image"


def _read_index(folder: Path, info: CatalogueInfo):
    if info.kind == "exact":
        index = vector_index.ExactIndex(info.dim)
        index.add(np.load(folder / EXACT_FILE, mmap_mode="r"))  # small: at most BRUTE_FORCE_MAX vectors
        return index
    import faiss

    flags = faiss.IO_FLAG_READ_ONLY | (faiss.IO_FLAG_MMAP if info.kind == "ivf" else faiss.IO_FLAG_MMAP_IFC)
    index = vector_index.FaissIndex.__new__(vector_index.FaissIndex)  # as FaissIndex.read, but memory-mapped
    index.kind, index.dim, index.index = info.kind, info.dim, faiss.read_index(str(folder / FAISS_FILE), flags)
    if info.kind == "hnsw":
        index.index.hnsw.efSearch = vector_index.HNSW_EF_SEARCH
    return index


def shown_copy(path: str, folder: Path) -> str | None:
    """A copy of a catalogue image in ``folder`` (one the web server may serve), or None when the server cannot
    read it: a URL, a missing file, a file without an image suffix."""
    source = Path(path)
    if not is_local(path) or source.suffix.lower() not in IMAGE_SUFFIXES or not source.is_file():
        return None
    stat = source.stat()  # a file changed since its copy was made gets a new copy
    name = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24] + source.suffix.lower()
    copy = Path(folder) / name
    if copy.is_file():
        return str(copy)
    temporary = None
    try:  # to a name of this call's own: searches showing the same image at once each write their own copy
        copy.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=copy.parent)
        os.close(handle)
        shutil.copyfile(source, temporary)
        os.replace(temporary, copy)
    except OSError:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        return str(copy) if copy.is_file() else None  # another search's copy, written whole, won the race
    return str(copy)
