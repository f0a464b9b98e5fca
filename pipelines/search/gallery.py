"""Image galleries for search: the bundled examples, a folder, or a visitor's uploads; embeddings cached on disk.

An image is known by the SHA-256 of its file's bytes. Its embedding is stored once per model (``ClipSpace.key``) in
the embedding cache (``embedding_cache``), so adding the same image again, or restarting the app, encodes nothing.
Uploads (images, or zips of images read by ``archives``) are copied into the upload store (``uploads``): a gallery
that takes uploads gets an owner token, a folder of its own, and its own embedding cache and indexes there, so
no visitor can fetch another's images or learn from a cache hit that someone uploaded the same picture. A zip
entry's name is never used as a path, so entries such as ``../../etc/passwd`` cannot write anywhere else. Images
are encoded by ``encoding`` and searched through an index per model (``index_store``, ``vector_index``).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..core.budget import Deadline, limit_phrase
from ..core.errors import InputError
from ..core.io import _IMAGE_FORMATS
from ..core.registry import PROJECT_ROOT
from ..fusion.space import ClipSpace
from .archives import check_not_a_bomb, open_zip, zip_entries, zip_files
from .embedding_cache import EmbeddingCache
from .encoding import Progress, encode_images
from .index_store import gallery_index
from .uploads import (
    EMBEDDINGS_FILE,
    INDEXES_FOLDER,
    QuotaExceeded,
    StoreWriteError,
    cache_dir,
    digest,
    file_entry,
    image_store,
    label,
    new_owner,
    owner_folder,
    upload_store,
)
from .vector_index import build

# image_store: kept here for scripts that imported it from the gallery module before it moved to uploads
__all__ = ["MAX_GALLERY_IMAGES", "MAX_UPLOAD_FILES", "Gallery", "Item", "Matches", "Report", "bundled", "image_store"]

# The examples gallery per profile: the toy models know only shapes (photos would rank by colour alone), real
# models get the photos.
BUNDLED_DIRS = {"toy": PROJECT_ROOT / "assets/examples/toy", "default": PROJECT_ROOT / "assets/examples/photos"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MAX_UPLOAD_FILES = 2_000  # files in one upload, zip entries included
MAX_GALLERY_IMAGES = 5_000  # images in one visitor's gallery
SHOWN_PROBLEMS = 5  # problems listed by name in a summary; the rest are counted


@dataclass(frozen=True)
class Matches:
    """What ``Gallery.find`` found."""

    rows: list  # per query vector, [(Item, score), ...] best first
    searched: int  # images searched: those encoded with the model (all of them, unless the time limit came first)
    notice: str = ""  # why fewer than all of the gallery's images were searched, with what happens next


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
    left: int = 0  # images not encoded yet: the time limit came first (they stay, for a later call)
    index_kind: str = ""
    problems: list[str] = field(default_factory=list)
    stopped: str = ""  # why the work was cut short (a quota, the time limit), with what to do

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
        if self.stopped:
            text += f" {self.stopped}"
        return text


class Gallery:
    """Images to search, with their embeddings and a nearest-neighbour index per model (built on demand).

    A gallery that takes uploads is private: ``owner`` (a random token, made on the first upload) names the
    folder that holds its images, embeddings and indexes; ``clear()`` deletes them.
    """

    def __init__(self, name: str, items: Iterable[Item] = (), owner: str | None = None):
        self.name = name
        self.owner = owner
        self.items: list[Item] = []
        self._digests: set[str] = set()
        self._prepared: dict[str, _Ready] = {}  # model key -> index over the items encoded with it
        self._lock = threading.RLock()
        for item in items:
            self._append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict:
        """Picklable (ZeroGPU Spaces send a session's gallery to a worker process): without the lock and the
        indexes, which are rebuilt on demand from the cached embeddings."""
        return {"name": self.name, "items": list(self.items), "owner": self.owner}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"], state["items"], state.get("owner"))

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
            gallery._append(Item(digest(Path(path).read_bytes()), str(path), label(path)))
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

    def add_uploads(self, files: Sequence, address: str | None = None) -> Report:
        """Adds uploaded image files and zips of images (copied into this gallery's own folder of the store);
        ``address`` is the client address they came from (its galleries share a byte quota), if known.

        Duplicates, non-images, unsafe zip entry names and nested archives are skipped and reported; a zip that
        would unpack to more than MAX_ZIP_BYTES, or compresses like a zip bomb, is refused whole. An image that
        would pass the visitor's, the address's or the store's byte quota stops the upload there: what came before it
        is kept, and ``Report.stopped`` says so, with the limit and what to do.
        """
        paths = [Path(f) for f in files or [] if f]
        if not paths:
            raise InputError("No files were given. Upload images (PNG, JPEG, WebP, ...) or a zip of images")
        archives = {p: open_zip(p) for p in paths if p.suffix.lower() == ".zip"}
        try:
            total = sum(len(zip_files(archives[p])) if p in archives else 1 for p in paths)
            if total > MAX_UPLOAD_FILES:
                raise InputError(
                    f"This upload holds {total:,} files; at most {MAX_UPLOAD_FILES:,} are taken at "
                    f"once. Upload fewer, or index a large folder offline with "
                    f"`python -m pipelines.index DIR`"
                )
            for archive in archives.values():
                check_not_a_bomb(archive)
            store = upload_store()
            store.maybe_sweep()
            report = Report()
            for path in paths:
                if path in archives:
                    entries = zip_entries(archives[path], report.problems)
                else:
                    entries = file_entry(path, report.problems)
                for name, data in entries:
                    self._add_bytes(name, data, report, address)
                    if report.stopped:
                        break
                if report.stopped:
                    break
            owner = self.owner
            if report.added and owner:
                store.touch(owner)  # the gallery's images age together, from its last upload
            return report
        finally:
            for archive in archives.values():
                archive.close()

    def _add_bytes(self, name: str, data: bytes, report: Report, address: str | None) -> None:
        try:
            with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
                suffix = "." + image.format.lower().replace("jpeg", "jpg")
        except Exception:  # PIL raises several kinds for non-images and damaged headers
            report.problems.append(f"{name} (not an image)")
            return
        content_hash = digest(data)
        with self._lock:
            if content_hash in self._digests:
                report.duplicates += 1
                return
            if len(self) >= MAX_GALLERY_IMAGES:
                report.problems.append(f"{name} (the gallery is full: {MAX_GALLERY_IMAGES:,} images)")
                return
            self.owner = self.owner or new_owner()  # the first upload makes the gallery private
            try:
                path = upload_store().put(self.owner, data, content_hash, suffix, address)
            except (QuotaExceeded, StoreWriteError) as error:
                if report.added:
                    kept = f"the {report.added} image{'s' * (report.added != 1)} before it were added, the rest not"
                else:
                    kept = "nothing was added"
                report.stopped = f"Stopped at {name}: {error}. Of this upload, {kept}."
                return
            self._append(Item(content_hash, str(path), label(PurePosixPath(name))))
            report.added += 1

    def clear(self) -> int:
        """Forgets every image; an owner's uploaded files, embeddings and indexes are deleted from disk. Returns
        the bytes of uploaded images freed."""
        with self._lock:
            owner, self.owner = self.owner, None
            self.items, self._digests = [], set()
            self._prepared.clear()
        return upload_store().remove(owner) if owner else 0

    def _cache_folder(self) -> Path:
        """Where this gallery's embeddings and indexes live: the owner's folder, else the shared cache."""
        return owner_folder(self.owner) if self.owner else cache_dir()

    # --------------------------------------------------------------------------------- embeddings

    def prepare(
        self, space: ClipSpace, *, progress: Progress | None = None, deadline: Deadline | None = None
    ) -> Report:
        """Makes the images searchable with ``space``: cached embeddings are read, the rest encoded and cached.

        Images that cannot be decoded leave the gallery and are reported. Past ``deadline`` no further batch starts:
        the images not reached stay in the gallery, un-encoded (``Report.left``, with one notice in
        ``Report.stopped``); the next call encodes them, and until then searches cover the others.
        """
        with self._lock:
            report = Report()
            ready = self._prepared.get(space.key)
            if ready is not None and ready.complete:
                report.cached, report.index_kind = len(self), ready.index.kind
                return report
            if not self.items:
                return report
            folder = self._cache_folder()  # an owner's own: no visitor learns from a hit what another uploaded
            cache = EmbeddingCache(folder / EMBEDDINGS_FILE)
            found = cache.get(space.key, [item.digest for item in self.items])
            missing = [item for item in self.items if item.digest not in found]
            report.cached = len(self) - len(missing)
            if missing:
                paths = [item.path for item in missing]
                vectors, failures, reached = encode_images(space, paths, progress=progress, deadline=deadline)
                ok = [item for i, item in enumerate(missing[:reached]) if i not in failures]
                cache.put(space.key, {item.digest: vector for item, vector in zip(ok, vectors)})
                found.update((item.digest, vector) for item, vector in zip(ok, vectors))
                report.encoded, report.left = len(ok), len(missing) - reached
                for i, message in sorted(failures.items()):
                    report.problems.append(f"{missing[i].label} ({message})")
                    self._digests.discard(missing[i].digest)
                if failures:  # the other models' indexes count positions in the old list
                    gone = {missing[i].digest for i in failures}
                    self.items = [item for item in self.items if item.digest not in gone]
                    self._prepared.clear()
                if report.left:
                    report.stopped = (
                        f"{report.left:,} of this gallery's images are not encoded with {space.spec.name} yet: "
                        f"{limit_phrase(deadline.seconds)}. They stay in the gallery and are encoded on the next "
                        "search or upload."
                    )
            searchable = [item for item in self.items if item.digest in found]
            if searchable:
                vectors = np.stack([found[item.digest] for item in searchable])
                if report.left:  # a partial index lives only until the next call: exact, never saved
                    index = build(vectors, "exact")
                else:
                    index = gallery_index(
                        vectors, space.key, [item.digest for item in searchable], folder / INDEXES_FOLDER
                    )
                self._prepared[space.key] = _Ready(index, searchable, complete=not report.left)
                report.index_kind = index.kind
            return report

    def search(
        self, space: ClipSpace, queries: np.ndarray, k: int, *, deadline: Deadline | None = None
    ) -> list[list[tuple[Item, float]]]:
        """The k best items for each query vector, best first (``find``'s rows)."""
        return self.find(space, queries, k, deadline=deadline).rows

    def find(self, space: ClipSpace, queries: np.ndarray, k: int, *, deadline: Deadline | None = None) -> Matches:
        """The k best items for each query vector, best first; images not encoded with ``space`` yet are encoded
        first. Past ``deadline`` the search covers the images encoded by then, and ``Matches.notice`` says how
        many were searched and that the rest are encoded on the next call."""
        with self._lock:
            report = self.prepare(space, deadline=deadline)  # may drop images that no longer decode
            ready = self._prepared.get(space.key)
            if ready is None:
                raise InputError(
                    f"The gallery '{self.name}' is empty: there is nothing to search. "
                    "Upload images (or a zip of images) first"
                )
            total = len(self)
        try:
            scores, ids = ready.index.search(queries, k)
        except ValueError as error:  # a query vector from another model
            raise InputError(
                f"The query does not fit this gallery's {space.spec.name} embeddings ({error}). "
                "Embed the query with the same model"
            ) from error
        rows = [
            [(ready.items[i], float(s)) for s, i in zip(row_scores, row_ids) if i >= 0]
            for row_scores, row_ids in zip(scores, ids)
        ]
        searched = len(ready.items)
        notice = f"Searched {searched:,} of {total:,} images. {report.stopped}" if report.stopped else ""
        return Matches(rows, searched, notice)


@dataclass(frozen=True)
class _Ready:
    """A gallery's index for one model, over the items it was built from (in index order)."""

    index: object
    items: list[Item]
    complete: bool  # every image of the gallery was encoded: no need to look again until it changes


def bundled(profile: str | None = None) -> Gallery:
    """The examples shipped in assets/examples for ``profile`` (default: the running one): toy scenes for the toy
    profile, photos for the default one. Shared by every visitor, read-only."""
    from ..core import runtime

    return _bundled("toy" if (profile or runtime.settings().profile) == "toy" else "default")


@lru_cache(maxsize=len(BUNDLED_DIRS))
def _bundled(kind: str) -> Gallery:
    folder = BUNDLED_DIRS[kind]
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    return Gallery.from_paths("examples", paths)
