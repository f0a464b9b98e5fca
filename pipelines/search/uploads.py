"""The upload store: each visitor's uploaded images in a folder of their own, bounded and swept.

    cache_dir()/images/<owner>/<keyed hash>.<ext>    an uploaded image (owner: a random token, one per gallery)
    cache_dir()/images/<owner>/embeddings.sqlite     that gallery's embeddings (never shared with other visitors)
    cache_dir()/images/<owner>/indexes/              that gallery's saved indexes
    cache_dir()/upload.key                           the install's secret for the keyed hashes (mode 0600)
    <shown root>/<keyed hash of owner>/<file name>   copies of the owner's images that the UI showed it

Nothing here is served to the browser as a static path: no other visitor can compute an owner token, and file
names are an HMAC of the owner and the image's SHA-256, so knowing an image does not name its file. The UI shows
results from copies in a folder its web server serves (``show_copies_in``), named by another keyed hash, so a
copy's address names neither the owner's folder nor the image. Writes are checked, before anything is written,
against a byte quota per owner, one per client address (all the galleries whose uploads came from it, so one client
cannot fill the store by opening many sessions) and one for the whole store; every file counts (images, embeddings,
indexes, shown copies), and each image is charged IMAGE_ALLOWANCE for the embeddings it will get. Files older than
the upload age are swept away (at most once a minute, on the next upload), and so are folders left without images;
clearing a gallery deletes its folder and its shown copies. An upload's own name is never used as a path. Imports
no gradio.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..core import runtime
from ..core.errors import InputError
from ..core.limits import ADDRESS_BYTES_ENV, STORE_BYTES_ENV, VISITOR_BYTES_ENV, limits

MAX_FILE_BYTES = 50 * 2**20  # bytes per image file
SWEEP_EVERY = 60.0  # seconds: the store is swept at most this often (on the next upload)
KEY_BYTES = 32  # bytes of the install's secret
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what new_owner() makes; anything else never becomes a path
STORED_PATTERN = re.compile(r"[0-9a-f]{32}\.[a-z0-9]{2,5}")  # an image file written by UploadStore.put
EMBEDDINGS_FILE = "embeddings.sqlite"
INDEXES_FOLDER = "indexes"
# Bytes charged per image, beside its file, for the embeddings it gets once searched: about 3 KiB per search model
# in SQLite (768 float32 and their keys), for each of the five models a visitor can choose. A sweep then counts
# what is really on disk.
IMAGE_ALLOWANCE = 16 * 2**10


class QuotaExceeded(InputError):
    """Storing an upload would pass the byte quota of its owner (``scope`` "visitor"), of all the owners whose
    uploads came from its client address ("address") or of the whole store ("store"). Nothing was kept."""

    def __init__(self, scope: str, limit: int, hours: float):
        if scope == "visitor":
            message = (
                f"your gallery's images would take more than {size_text(limit)} on the server, the limit per "
                f"visitor ({VISITOR_BYTES_ENV}). Clear your gallery to make room, or upload fewer or smaller images"
            )
        elif scope == "address":
            message = (
                f"the galleries uploaded from your network address would together take more than {size_text(limit)} "
                f"on the server, the limit per address ({ADDRESS_BYTES_ENV}). Clear a gallery (in any of your browser "
                f"tabs) to make room, or wait: uploads are removed after {hours:g} hours"
            )
        else:
            message = (
                f"the server's space for uploaded images ({size_text(limit)} for all visitors together, "
                f"{STORE_BYTES_ENV}) is full. Try again later: uploads are removed after {hours:g} hours "
                "(clearing your gallery frees your share at once)"
            )
        super().__init__(message)


class StoreWriteError(InputError):
    """The server could not write an upload (a full disk, or the gallery cleared meanwhile). Nothing was kept."""

    def __init__(self):
        super().__init__("the server could not store it. Try again later")


def cache_dir() -> Path:
    """The app's own files: embedding cache, uploaded images, saved indexes."""
    return Path(runtime.settings().cache_dir).expanduser()


def image_store() -> Path:
    """Where uploaded images are kept: one folder per owner (never served as a static path)."""
    return cache_dir() / "images"


def digest(data: bytes) -> str:
    """The name of an image's content: SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def label(path) -> str:
    """What a result is called: the file name without its suffix, underscores as spaces."""
    return PurePosixPath(str(path)).stem.replace("_", " ")


def size_text(size: int) -> str:
    """Bytes in words: 2.0 GB, 256 MB, 300 KB."""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GB"
    if size >= 2**20:
        return f"{size / 2**20:.0f} MB"
    return f"{max(size, 1) / 2**10:.0f} KB"


def new_owner() -> str:
    """A fresh owner token: the folder of one gallery's uploads, which no one else can guess."""
    return secrets.token_urlsafe(24)


def owner_folder(owner: str) -> Path:
    """The folder of ``owner``'s uploads, embeddings and indexes (not created here)."""
    if not isinstance(owner, str) or not OWNER_PATTERN.fullmatch(owner):
        raise ValueError("not an owner token made by new_owner()")
    return image_store() / owner


_shown_root: Path | None = None


def show_copies_in(folder: Path | str) -> None:
    """Where ``UploadStore.shown_copy`` puts the copies of uploaded images that the UI shows: a folder its web
    server serves (e.g. Gradio's cache). Copies are deleted with their owner's images, swept by the same age and
    counted in the owner's quota."""
    global _shown_root
    _shown_root = Path(folder)


def shown_folder(owner: str) -> Path | None:
    """The folder of ``owner``'s shown copies (None: ``show_copies_in`` was never called). Its name is a keyed
    hash: a copy's address does not give away the owner token."""
    if _shown_root is None:
        return None
    owner_folder(owner)  # checks the token
    return _shown_root / hmac.new(install_key(), f"shown\n{owner}".encode(), hashlib.sha256).hexdigest()[:32]


_keys: dict[Path, bytes] = {}
_keys_lock = threading.Lock()


def install_key() -> bytes:
    """The install's secret for keyed file names: made once in the cache directory, readable by its owner only."""
    path = cache_dir() / "upload.key"
    with _keys_lock:
        if path not in _keys:
            key = path.read_bytes() if path.is_file() else b""
            if len(key) < KEY_BYTES:  # none yet (or damaged: a fresh key only renames future uploads)
                _write_key(path, secrets.token_bytes(KEY_BYTES), replace=bool(key))
                key = path.read_bytes()  # another process may have made it first: theirs counts
            _keys[path] = key
        return _keys[path]


def _write_key(path: Path, key: bytes, *, replace: bool) -> None:
    """Writes the key under a temporary name (mode 0600), then links it into place whole: a reader never sees
    half a key, and of two processes making one at once the first wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
    try:
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def stored_name(owner: str, content_hash: str, suffix: str) -> str:
    """The file name of an owner's image: a keyed hash, so the image's SHA-256 does not name it."""
    mac = hmac.new(install_key(), f"{owner}\n{content_hash}".encode(), hashlib.sha256).hexdigest()
    return mac[:32] + suffix


class UploadStore:
    """Byte accounting, quotas and sweeping for the owner folders under ``root`` (one per cache directory)."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._used: dict[str, int] = defaultdict(int)  # owner -> bytes charged (its files and shown copies)
        self._reserved: dict[str, int] = defaultdict(int)  # owner -> bytes being written now
        # owner -> the client address its first upload with one came from. In memory only: after a restart the
        # galleries already on disk count for no address (they still count for their owner and the store).
        self._addresses: dict[str, str] = {}
        self._last_sweep = float("-inf")
        self.sweep()  # counts what is on disk (and removes what is too old)

    def used(self, owner: str | None = None) -> int:
        """Bytes kept for ``owner``, or for everyone (writes under way included): images, embeddings, indexes and
        shown copies as last counted by a sweep, plus each image stored since with its IMAGE_ALLOWANCE."""
        with self._lock:
            if owner is not None:
                return self._used.get(owner, 0) + self._reserved.get(owner, 0)
            return sum(self._used.values()) + sum(self._reserved.values())

    def address_used(self, address: str) -> int:
        """Bytes kept (writes under way included) for all the owners whose uploads came from ``address``."""
        with self._lock:
            return self._address_used(address)

    def _address_used(self, address: str) -> int:
        owners = [owner for owner, known in self._addresses.items() if known == address]
        return sum(self._used.get(owner, 0) + self._reserved.get(owner, 0) for owner in owners)

    def put(self, owner: str, data: bytes, content_hash: str, suffix: str, address: str | None = None) -> Path:
        """Writes ``owner``'s image (once) and returns its path; QuotaExceeded, with nothing written, if it and its
        IMAGE_ALLOWANCE would pass the owner's quota, that of its client ``address`` (all the owners whose uploads
        came from it; an owner counts for the first address it stored with) or the store's; StoreWriteError if the
        disk refused it."""
        folder = owner_folder(owner)
        path = folder / stored_name(owner, content_hash, suffix)
        if path.is_file():
            return path
        size = len(data) + IMAGE_ALLOWANCE
        bounds = limits()
        with self._lock:
            if self._used.get(owner, 0) + self._reserved.get(owner, 0) + size > bounds.visitor_bytes:
                raise QuotaExceeded("visitor", bounds.visitor_bytes, bounds.upload_hours)
            address = self._addresses.get(owner, address)
            if address is not None:
                held = self._address_used(address)
                if owner not in self._addresses:  # its first upload with an address: what it holds counts there too
                    held += self._used.get(owner, 0) + self._reserved.get(owner, 0)
                if held + size > bounds.address_bytes:
                    raise QuotaExceeded("address", bounds.address_bytes, bounds.upload_hours)
            if sum(self._used.values()) + sum(self._reserved.values()) + size > bounds.store_bytes:
                raise QuotaExceeded("store", bounds.store_bytes, bounds.upload_hours)
            if address is not None:
                self._addresses[owner] = address
            self._reserved[owner] += size
        written = False
        temporary = folder / f".{path.stem}.{threading.get_ident()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            temporary.replace(path)
            written = True
        except OSError as error:  # a full disk, or the folder removed meanwhile (the gallery cleared)
            temporary.unlink(missing_ok=True)
            raise StoreWriteError() from error
        finally:
            with self._lock:
                self._reserved[owner] -= size
                if not self._reserved[owner]:
                    del self._reserved[owner]
                if written:
                    self._used[owner] += size
        return path

    def touch(self, owner: str) -> None:
        """Marks ``owner``'s images as used now: a gallery's images age together, from its last upload."""
        for path in _images(owner_folder(owner)):
            try:
                os.utime(path)
            except OSError:
                pass  # swept meanwhile

    def shown_copy(self, path: Path | str) -> Path | None:
        """A copy of the stored image ``path`` in its owner's folder of shown copies (made once, charged to the
        owner), for the UI to serve; None if the image was swept meanwhile (or the copy could not be written)."""
        path = Path(path)
        owner = path.parent.name
        folder = shown_folder(owner)
        if folder is None:
            raise RuntimeError("show_copies_in(folder) names no folder for shown copies yet")
        copy = folder / path.name
        if copy.is_file():
            return copy
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        temporary = folder / f".{path.stem}.{threading.get_ident()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            temporary.replace(copy)
        except OSError:  # a full disk, or the gallery cleared meanwhile
            temporary.unlink(missing_ok=True)
            return None
        with self._lock:
            self._used[owner] += len(data)
        return copy

    def remove(self, owner: str) -> int:
        """Deletes ``owner``'s images, embeddings, indexes and shown copies; returns the bytes freed."""
        shutil.rmtree(owner_folder(owner), ignore_errors=True)
        shown = shown_folder(owner)
        if shown is not None:
            shutil.rmtree(shown, ignore_errors=True)
        with self._lock:
            if not self._reserved.get(owner):  # a write under way keeps its address (the sweep drops it after)
                self._addresses.pop(owner, None)
            return self._used.pop(owner, 0)

    def maybe_sweep(self) -> None:
        """Sweeps if the last sweep was more than SWEEP_EVERY seconds ago (cheap to call on every upload)."""
        if time.monotonic() - self._last_sweep >= SWEEP_EVERY:
            self.sweep()

    def sweep(self) -> int:
        """Removes images older than the upload age (with their shown copies), and owner folders left without
        images; recounts the bytes on disk, every file of each owner. Returns the number of images removed."""
        cutoff = time.time() - limits().upload_hours * 3600
        removed = 0
        with self._lock:  # uploads wait for the sweep (a few ms per thousand files), so the count stays exact
            self._last_sweep = time.monotonic()
            _sweep_copies(cutoff)
            used: dict[str, int] = {}
            folders = [p for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
            for folder in folders:
                shown = shown_folder(folder.name) if OWNER_PATTERN.fullmatch(folder.name) else None
                left = 0
                for path in _images(folder, temporary=True):
                    try:
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            removed += not path.name.endswith(".tmp")
                            if shown is not None:
                                (shown / path.name).unlink(missing_ok=True)
                            continue
                    except OSError:
                        continue  # removed meanwhile
                    left += 1
                if left or self._reserved.get(folder.name):
                    used[folder.name] = _bytes(folder) + (_bytes(shown) if shown is not None else 0)
                else:
                    shutil.rmtree(folder, ignore_errors=True)
                    if shown is not None:
                        shutil.rmtree(shown, ignore_errors=True)
            self._used = defaultdict(int, used)
            self._addresses = {
                owner: address for owner, address in self._addresses.items() if owner in used or owner in self._reserved
            }
        return removed


def _bytes(folder: Path) -> int:
    """Bytes of every file under ``folder`` (files being written excepted: they are reserved)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            if not name.endswith(".tmp"):
                with contextlib.suppress(OSError):  # removed meanwhile
                    total += os.lstat(os.path.join(parent, name)).st_size
    return total


def _sweep_copies(cutoff: float) -> None:
    """Removes shown copies older than ``cutoff`` (those of owners this store no longer knows, e.g. from before a
    restart with another cache directory), and the folders they leave empty."""
    if _shown_root is None or not _shown_root.is_dir():
        return
    for folder in _shown_root.iterdir():
        with contextlib.suppress(OSError):  # removed meanwhile
            for path in folder.iterdir():
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            folder.rmdir()  # only if empty


def _images(folder: Path, *, temporary: bool = False) -> Iterator[Path]:
    """The image files in an owner's folder (and files being written, if ``temporary``); not its embeddings or
    indexes. Folders of an older layout (images named by their bare SHA-256) count as images too, to be swept."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not entry.is_file(follow_symlinks=False) or name.startswith(EMBEDDINGS_FILE):
            continue
        if name.endswith(".tmp"):
            if temporary:
                yield Path(entry.path)
        elif STORED_PATTERN.fullmatch(name) or not OWNER_PATTERN.fullmatch(folder.name):
            yield Path(entry.path)


_stores: dict[Path, UploadStore] = {}
_stores_lock = threading.Lock()


def upload_store() -> UploadStore:
    """The store of the cache directory in use (made, counted and swept on first use)."""
    root = image_store()
    with _stores_lock:
        if root not in _stores:
            _stores[root] = UploadStore(root)
        return _stores[root]


def file_entry(path: Path, problems: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of one uploaded file, or nothing and a problem appended (missing, empty, too large)."""
    name = path.name
    try:
        size = path.stat().st_size
    except OSError:
        problems.append(f"{name} (the upload is missing; upload it again)")
        return
    if size == 0:
        problems.append(f"{name} (empty file)")
    elif size > MAX_FILE_BYTES:
        problems.append(f"{name} ({size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
    else:
        yield name, path.read_bytes()
