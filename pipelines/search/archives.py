"""Reading uploaded zips of images safely: a zip bomb is refused from the directory alone, and entries with unsafe
names, encrypted or nested archives are skipped and reported. Entry names are never used as paths."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..core.errors import InputError
from .uploads import MAX_FILE_BYTES

MAX_ZIP_BYTES = 2 * 2**30  # bytes: everything in one zip, uncompressed
MAX_ZIP_RATIO = 100  # uncompressed / compressed size of an entry; images barely compress, zip bombs ~1000x


def open_zip(path: Path) -> zipfile.ZipFile:
    """The zip at ``path``, or an InputError that says it is not one."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(
            f"'{path.name}' is not a readable zip file. Upload the images themselves, or zip them again"
        ) from error


def zip_files(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's file entries (folders left out)."""
    return [info for info in archive.infolist() if not info.is_dir()]


def check_not_a_bomb(archive: zipfile.ZipFile) -> None:
    """Refuses, from the zip's directory alone, archives that would unpack to far more than they weigh."""
    name = Path(archive.filename or "upload.zip").name
    infos = zip_files(archive)
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_ZIP_BYTES:
        raise InputError(
            f"'{name}' would unpack to {unpacked / 2**30:.1f} GB; the limit is "
            f"{MAX_ZIP_BYTES / 2**30:.0f} GB. Upload a smaller zip"
        )
    for info in infos:
        if info.file_size > 2**20 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise InputError(
                f"'{name}' looks like a zip bomb: '{info.filename}' unpacks "
                f"{info.file_size / max(info.compress_size, 1):,.0f} times larger than it is stored. "
                "Nothing was unpacked. Upload the images themselves"
            )


def zip_entries(archive: zipfile.ZipFile, problems: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each usable entry; what is skipped is appended to ``problems`` (macOS forks silently)."""
    for info in zip_files(archive):
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        base = parts[-1] if parts else name
        if base.startswith("._") or "__MACOSX" in parts:
            continue  # macOS resource forks, not images
        if name.startswith(("/", "\\")) or ".." in parts or ":" in (parts[0] if parts else ""):
            problems.append(f"{name} (unsafe path in the zip; not used)")
        elif info.flag_bits & 0x1:
            problems.append(f"{name} (encrypted)")
        elif base.lower().endswith((".zip", ".tar", ".gz", ".7z", ".rar")):
            problems.append(f"{name} (an archive inside the zip; nested archives are not opened)")
        elif info.file_size > MAX_FILE_BYTES:
            problems.append(f"{name} ({info.file_size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
        else:
            try:
                with archive.open(info) as entry:
                    data = entry.read(MAX_FILE_BYTES + 1)
            except Exception:  # zipfile raises BadZipFile, zlib.error, NotImplementedError, ...
                problems.append(f"{name} (damaged in the zip, or compressed in a way that cannot be read)")
                continue
            yield name, data
