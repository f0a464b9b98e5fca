"""The upload store: uploaded images are copied into the app's cache directory under the SHA-256 of their bytes
(an upload's own name is never used as a path), and one uploaded file is read within the size limit."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..core import runtime

MAX_FILE_BYTES = 50 * 2**20  # bytes per image file


def cache_dir() -> Path:
    """The app's own files: embedding cache, uploaded images, saved indexes."""
    return Path(runtime.settings().cache_dir).expanduser()


def image_store() -> Path:
    """Where uploaded images are kept, by content hash (served to the browser as result thumbnails)."""
    return cache_dir() / "images"


def digest(data: bytes) -> str:
    """The name of an image's content: SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def label(path) -> str:
    """What a result is called: the file name without its suffix, underscores as spaces."""
    return PurePosixPath(str(path)).stem.replace("_", " ")


def store(data: bytes, digest: str, suffix: str) -> Path:
    """The upload's copy in the image store (written once; the name is the hash, never the upload's name)."""
    folder = image_store() / digest[:2]
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{digest}.{threading.get_ident()}.tmp"
        temporary.write_bytes(data)
        temporary.replace(path)
    return path


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
