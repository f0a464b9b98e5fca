"""Image galleries for search: the bundled examples, a folder, or a visitor's uploads; embeddings cached on disk.

An image is known by the SHA-256 of its file's bytes. Its embedding is stored once per model (``ClipSpace.key``) in a
SQLite file in the app's cache directory, so adding the same image again, or restarting the app, encodes nothing.
Uploads (images or zips of images) are copied into the cache directory under their hash: a zip entry's name is never
used as a path, so entries such as ``../../etc/passwd`` cannot write anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import sys
import threading
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ..core import runtime
from ..core.errors import InputError, PipelineError
from ..core.io import _IMAGE_FORMATS, load_image
from ..core.registry import PROJECT_ROOT
from ..fusion.space import BATCH_SIZE, ClipSpace
from . import vector_index

BUNDLED_DIRS = (PROJECT_ROOT / "assets/examples/photos", PROJECT_ROOT / "assets/examples/toy")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MAX_UPLOAD_FILES = 2_000  # files in one upload, zip entries included
MAX_GALLERY_IMAGES = 5_000  # images in one visitor's gallery
MAX_FILE_BYTES = 50 * 2**20  # bytes per image file
MAX_ZIP_BYTES = 2 * 2**30  # bytes: everything in one zip, uncompressed
MAX_ZIP_RATIO = 100  # uncompressed / compressed size of an entry; images barely compress, zip bombs ~1000x
DECODE_AHEAD = 2  # batches decoded on a worker thread while the model encodes the current one
DECODE_NICENESS = 19  # the decoding thread's priority: lowest, it runs on CPU time the encoder leaves idle
SHOWN_PROBLEMS = 5  # problems listed by name in a summary; the rest are counted

Progress = Callable[[int, int, str], None]  # (done, total, what is being done)


@dataclass(frozen=True)
class Item:
    digest: str  # SHA-256 of the file's bytes
    path: str  # the image file (uploads: a copy in the cache directory)
    label: str  # file name without suffix, underscores as spaces


@dataclass
class Report:
    """What adding or preparing images did."""

    added: int = 0
    duplicates: int = 0
    encoded: int = 0  # images run through the image encoder
    cached: int = 0  # embeddings read from the on-disk cache
    index_kind: str = ""
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.added} image{'s' * (self.added != 1)} added"]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate{'s' * (self.duplicates != 1)} skipped")
        if self.encoded or self.cached:
            parts.append(f"{self.encoded} encoded, {self.cached} from the cache")
        text = "; ".join(parts) + "."
        if self.problems:
            shown = "; ".join(self.problems[:SHOWN_PROBLEMS])
            more = len(self.problems) - SHOWN_PROBLEMS
            text += f" Skipped {len(self.problems)}: {shown}" + (f"; and {more} more." if more > 0 else ".")
        return text


# ----------------------------------------------------------------------------------- embedding cache


class EmbeddingCache:
    """Embeddings by (model key, image digest) in one SQLite file; safe across threads and processes."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=60)) as db:
            db.execute("CREATE TABLE IF NOT EXISTS embeddings "
                       "(model TEXT, digest TEXT, vector BLOB, PRIMARY KEY (model, digest))")
            with db:  # one transaction
                yield db

    def get(self, model: str, digests: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        with self._db() as db:
            for start in range(0, len(unique), 500):  # SQLite limits the parameters of one statement
                chunk = unique[start:start + 500]
                rows = db.execute(f"SELECT digest, vector FROM embeddings WHERE model = ? AND digest IN "
                                  f"({','.join('?' * len(chunk))})", [model, *chunk])
                found.update((digest, np.frombuffer(blob, dtype=np.float32)) for digest, blob in rows)
        return found

    def put(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                           [(model, d, np.asarray(v, dtype=np.float32).tobytes()) for d, v in vectors.items()])


def cache_dir() -> Path:
    return Path(runtime.settings().cache_dir).expanduser()


def embedding_cache() -> EmbeddingCache:
    return EmbeddingCache(cache_dir() / "embeddings.sqlite")


def image_store() -> Path:
    """Where uploaded images are kept, by content hash (served to the browser as result thumbnails)."""
    return cache_dir() / "images"


# ------------------------------------------------------------------------------------------ encoding


def encode_images(space: ClipSpace, sources: Sequence, *, progress: Progress | None = None,
                  batch_size: int = BATCH_SIZE) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings of the images that decode, and {position: message} for those that do not.

    A low-priority worker thread decodes and preprocesses the next batches with the CPU time the encoder leaves
    idle. It never preempts the encoder: a stalled thread stalls its partner in every matrix product, so decoding
    at equal priority cost about twice its own CPU time. Images the worker has not finished when the encoder needs
    them are decoded on the encoder's thread, from the batch's other end: the encoder never waits for a worker
    that a busy machine starves.
    """
    size = _input_size(space)
    batches = [range(start, min(start + batch_size, len(sources))) for start in range(0, len(sources), batch_size)]
    vectors = np.zeros((0, 0), dtype=np.float32)  # no rows: no image decoded
    done_rows: list[tuple[int, np.ndarray]] = []
    failures: dict[int, str] = {}

    def decode(position: int):
        try:
            return _pixels(space, sources[position], size)
        except PipelineError as error:
            return error

    def collect(jobs: list) -> list:
        mine = {}
        for position, job in reversed(jobs):
            if not job.done():
                job.cancel()  # fails if the worker is on it: decoded twice then, rather than waited for
                mine[position] = decode(position)
        return [(position, mine[position] if position in mine else job.result()) for position, job in jobs]

    pool = _decoding_pool()
    try:
        pending = deque([(p, pool.submit(decode, p)) for p in batch] for batch in batches[:DECODE_AHEAD])
        queued = len(pending)
        done = 0
        while pending:
            decoded = collect(pending.popleft())
            if queued < len(batches):
                pending.append([(p, pool.submit(decode, p)) for p in batches[queued]])
                queued += 1
            good = [(p, pixels) for p, pixels in decoded if not isinstance(pixels, Exception)]
            failures.update((p, str(error)) for p, error in decoded if isinstance(error, Exception))
            if good:
                embedded = space.embed_pixels([pixels for _, pixels in good])
                done_rows.extend(zip((p for p, _ in good), embedded))
            done += len(decoded)
            if progress:
                progress(done, len(sources), "Encoding images")
    finally:  # not waiting for an image the worker may still be on (already decoded here)
        pool.shutdown(wait=False, cancel_futures=True)
    if done_rows:
        done_rows.sort(key=lambda row: row[0])
        vectors = np.stack([v for _, v in done_rows])
    return vectors, failures


def _decoding_pool() -> ThreadPoolExecutor:
    """The one worker thread that decodes images for ``encode_images``, at the lowest priority."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode", initializer=_yield_cpu)


def _yield_cpu() -> None:
    """Lowers the calling thread's scheduling priority (Linux sets niceness per thread; elsewhere: no change)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICENESS)


def _input_size(space: ClipSpace) -> int:
    size = getattr(getattr(space.model, "visual", None), "image_size", 224)
    return int(max(size) if isinstance(size, (tuple, list)) else size)


def _pixels(space: ClipSpace, source, size: int):
    """Preprocessed pixels; JPEG files are decoded at a reduced scale that still covers the model's input."""
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".jpg", ".jpeg"):
        with contextlib.suppress(Exception):  # anything odd: the full decoder below says what is wrong
            with Image.open(source, formats=["JPEG"]) as image:
                image.draft("RGB", (size, size))
                return space.preprocess(load_image(image))
    return space.pixels(source)


# ------------------------------------------------------------------------------------------- galleries


class Gallery:
    """Images to search, with their embeddings and a nearest-neighbour index per model (built on demand)."""

    def __init__(self, name: str, items: Iterable[Item] = ()):
        self.name = name
        self.items: list[Item] = []
        self._digests: set[str] = set()
        self._prepared: dict[str, object] = {}  # model key -> index over self.items, in order
        self._lock = threading.RLock()
        for item in items:
            self._append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict:
        """Picklable (ZeroGPU Spaces send a session's gallery to a worker process): without the lock and the
        indexes, which are rebuilt on demand from the cached embeddings."""
        return {"name": self.name, "items": list(self.items)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"], state["items"])

    def _append(self, item: Item) -> bool:
        if item.digest in self._digests:
            return False
        self._digests.add(item.digest)
        self.items.append(item)
        self._prepared.clear()
        return True

    @classmethod
    def from_paths(cls, name: str, paths: Iterable[Path], *, progress: Progress | None = None) -> "Gallery":
        """A gallery of image files where they are (not copied); duplicates by content are kept once."""
        paths = list(paths)
        gallery = cls(name)
        for done, path in enumerate(paths, 1):
            gallery._append(Item(_digest(Path(path).read_bytes()), str(path), _label(path)))
            if progress and (done % 100 == 0 or done == len(paths)):
                progress(done, len(paths), "Reading files")
        return gallery

    @classmethod
    def from_folder(cls, folder: Path, *, progress: Progress | None = None) -> "Gallery":
        """Every image file under ``folder``, recursively (by suffix: .jpg, .png, .webp, ...)."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise InputError(f"There is no folder at '{folder}'. Give the path of a folder of images")
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"'{folder}' holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return cls.from_paths(folder.name, paths, progress=progress)

    # ---------------------------------------------------------------------------------- uploads

    def add_uploads(self, files: Sequence) -> Report:
        """Adds uploaded image files and zips of images (copied into the cache directory by content hash).

        Duplicates, non-images, unsafe zip entry names and nested archives are skipped and reported; a zip that
        would unpack to more than MAX_ZIP_BYTES, or compresses like a zip bomb, is refused whole.
        """
        paths = [Path(f) for f in files or [] if f]
        if not paths:
            raise InputError("No files were given. Upload images (PNG, JPEG, WebP, ...) or a zip of images")
        archives = {p: _open_zip(p) for p in paths if p.suffix.lower() == ".zip"}
        try:
            total = sum(len(_zip_files(archives[p])) if p in archives else 1 for p in paths)
            if total > MAX_UPLOAD_FILES:
                raise InputError(f"This upload holds {total:,} files; at most {MAX_UPLOAD_FILES:,} are taken at "
                                 f"once. Upload fewer, or index a large folder offline with "
                                 f"`python -m pipelines.index DIR`")
            for archive in archives.values():
                _check_not_a_bomb(archive)
            report = Report()
            for path in paths:
                if path in archives:
                    entries = _zip_entries(path, archives[path], report)
                else:
                    entries = _file_entry(path, report)
                for name, data in entries:
                    self._add_bytes(name, data, report)
            return report
        finally:
            for archive in archives.values():
                archive.close()

    def _add_bytes(self, name: str, data: bytes, report: Report) -> None:
        try:
            with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
                suffix = "." + image.format.lower().replace("jpeg", "jpg")
        except Exception:  # PIL raises several kinds for non-images and damaged headers
            report.problems.append(f"{name} (not an image)")
            return
        digest = _digest(data)
        with self._lock:
            if digest in self._digests:
                report.duplicates += 1
                return
            if len(self) >= MAX_GALLERY_IMAGES:
                report.problems.append(f"{name} (the gallery is full: {MAX_GALLERY_IMAGES:,} images)")
                return
            path = _store(data, digest, suffix)
            self._append(Item(digest, str(path), _label(PurePosixPath(name))))
            report.added += 1

    # --------------------------------------------------------------------------------- embeddings

    def prepare(self, space: ClipSpace, *, progress: Progress | None = None) -> Report:
        """Makes every image searchable with ``space``: cached embeddings are read, the rest encoded and cached.

        Images that cannot be decoded leave the gallery and are reported.
        """
        with self._lock:
            report = Report()
            if space.key in self._prepared:
                report.cached, report.index_kind = len(self), self._prepared[space.key].kind
                return report
            cache = embedding_cache()
            found = cache.get(space.key, [item.digest for item in self.items])
            missing = [item for item in self.items if item.digest not in found]
            report.cached, report.encoded = len(self) - len(missing), len(missing)
            if missing:
                vectors, failures = encode_images(space, [item.path for item in missing], progress=progress)
                ok = [item for i, item in enumerate(missing) if i not in failures]
                cache.put(space.key, {item.digest: vector for item, vector in zip(ok, vectors)})
                found.update((item.digest, vector) for item, vector in zip(ok, vectors))
                for i, message in sorted(failures.items()):
                    report.problems.append(f"{missing[i].label} ({message})")
                    self._digests.discard(missing[i].digest)
                if failures:  # the other models' indexes count positions in the old list
                    self.items = [item for item in self.items if item.digest in found]
                    self._prepared.clear()
                report.encoded -= len(failures)
            if self.items:
                self._prepared[space.key] = self._index(space, np.stack([found[i.digest] for i in self.items]))
                report.index_kind = self._prepared[space.key].kind
            return report

    def _index(self, space: ClipSpace, vectors: np.ndarray):
        """Exact for small galleries; a FAISS index for large ones, saved so a restart does not rebuild it."""
        kind = vector_index.choose_kind(len(vectors))
        if kind == "exact":
            return vector_index.build(vectors, kind)
        names = hashlib.sha256("\n".join([space.key, *(i.digest for i in self.items)]).encode()).hexdigest()
        path = cache_dir() / "indexes" / f"{names[:32]}.faiss"
        if path.is_file():
            return vector_index.FaissIndex.read(path)
        index = vector_index.build(vectors, kind)
        index.save(path)
        return index

    def search(self, space: ClipSpace, queries: np.ndarray, k: int) -> list[list[tuple[Item, float]]]:
        """The k best items for each query vector, best first."""
        with self._lock:
            if self.items:
                self.prepare(space)  # may drop images that no longer decode
            if not self.items:
                raise InputError(f"The gallery '{self.name}' is empty: there is nothing to search. "
                                 "Upload images (or a zip of images) first")
            index, items = self._prepared[space.key], list(self.items)
        try:
            scores, ids = index.search(queries, k)
        except ValueError as error:  # a query vector from another model
            raise InputError(f"The query does not fit this gallery's {space.spec.name} embeddings ({error}). "
                             "Embed the query with the same model") from error
        return [[(items[i], float(s)) for s, i in zip(row_scores, row_ids) if i >= 0]
                for row_scores, row_ids in zip(scores, ids)]


@lru_cache(maxsize=1)
def bundled() -> Gallery:
    """The example photos and toy scenes shipped in assets/examples (shared by every visitor, read-only)."""
    paths = sorted(p for d in BUNDLED_DIRS if d.is_dir() for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return Gallery.from_paths("examples", paths)


# --------------------------------------------------------------------------------------- upload helpers


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _label(path) -> str:
    return PurePosixPath(str(path)).stem.replace("_", " ")


def _store(data: bytes, digest: str, suffix: str) -> Path:
    """The upload's copy in the image store (written once; the name is the hash, never the upload's name)."""
    folder = image_store() / digest[:2]
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{digest}.{threading.get_ident()}.tmp"
        temporary.write_bytes(data)
        temporary.replace(path)
    return path


def _file_entry(path: Path, report: Report) -> Iterator[tuple[str, bytes]]:
    name = path.name
    try:
        size = path.stat().st_size
    except OSError:
        report.problems.append(f"{name} (the upload is missing; upload it again)")
        return
    if size == 0:
        report.problems.append(f"{name} (empty file)")
    elif size > MAX_FILE_BYTES:
        report.problems.append(f"{name} ({size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
    else:
        yield name, path.read_bytes()


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"'{path.name}' is not a readable zip file ({error}). Upload the images themselves, "
                         "or zip them again") from error


def _zip_files(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [info for info in archive.infolist() if not info.is_dir()]


def _check_not_a_bomb(archive: zipfile.ZipFile) -> None:
    """Refuses, from the zip's directory alone, archives that would unpack to far more than they weigh."""
    name = Path(archive.filename or "upload.zip").name
    infos = _zip_files(archive)
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_ZIP_BYTES:
        raise InputError(f"'{name}' would unpack to {unpacked / 2**30:.1f} GB; the limit is "
                         f"{MAX_ZIP_BYTES / 2**30:.0f} GB. Upload a smaller zip")
    for info in infos:
        if info.file_size > 2**20 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise InputError(f"'{name}' looks like a zip bomb: '{info.filename}' unpacks "
                             f"{info.file_size / max(info.compress_size, 1):,.0f} times larger than it is stored. "
                             "Nothing was unpacked. Upload the images themselves")


def _zip_entries(path: Path, archive: zipfile.ZipFile, report: Report) -> Iterator[tuple[str, bytes]]:
    for info in _zip_files(archive):
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        base = parts[-1] if parts else name
        if base.startswith("._") or "__MACOSX" in parts:
            continue  # macOS resource forks, not images
        if name.startswith(("/", "\\")) or ".." in parts or ":" in (parts[0] if parts else ""):
            report.problems.append(f"{name} (unsafe path in the zip; not used)")
        elif info.flag_bits & 0x1:
            report.problems.append(f"{name} (encrypted)")
        elif base.lower().endswith((".zip", ".tar", ".gz", ".7z", ".rar")):
            report.problems.append(f"{name} (an archive inside the zip; nested archives are not opened)")
        elif info.file_size > MAX_FILE_BYTES:
            report.problems.append(f"{name} ({info.file_size / 2**20:.0f} MB; the limit is "
                                   f"{MAX_FILE_BYTES // 2**20} MB)")
        else:
            try:
                with archive.open(info) as entry:
                    data = entry.read(MAX_FILE_BYTES + 1)
            except Exception as error:  # zipfile raises BadZipFile, zlib.error, NotImplementedError, ...
                report.problems.append(f"{name} (damaged in the zip: {error})")
                continue
            yield name, data
