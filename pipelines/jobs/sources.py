"""What a job reads: SOURCE names a folder, a text or Parquet file listing paths or URLs, or a glob; each image is
then read as bytes from a local path, an http(s) URL or a filesystem URI pyarrow knows (s3://, gs://, hdfs://)."""

from __future__ import annotations

import glob
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..core.errors import InputError
from ..search.gallery import IMAGE_SUFFIXES

MAX_IMAGE_BYTES = 64 << 20  # bytes read per image at most: a larger "image" is refused, not read whole
URL_TIMEOUT = 30  # seconds to wait for a remote image
PATH_COLUMNS = ("path", "url", "image_path")  # the column a Parquet list of images is read from, first found
LIST_SUFFIXES = {".txt", ".lst", ".csv"}  # text files: one path or URL a line


class Unreadable(Exception):
    """An image whose bytes could not be read: the reason becomes its row's error."""


def list_images(source: str | Path) -> list[str]:
    """Every image SOURCE names, deduplicated, in a stable order (sorted for folders and globs, as listed for
    list files): the order decides the shards, so a re-run plans the same shards. Local files are given by absolute
    path (a relative one taken from the current folder); URLs and URIs as listed."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        what = f"the folder '{text}' holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
    elif path.is_file() and path.suffix.lower() == ".parquet":
        found, what = _parquet_list(path), f"the Parquet file '{text}' lists no images"
    elif path.is_file() and (path.suffix.lower() in LIST_SUFFIXES or path.suffix.lower() not in IMAGE_SUFFIXES):
        lines = path.read_text(encoding="utf-8").splitlines()
        found = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        what = f"the list '{text}' names no images (one path or URL a line)"
    elif glob.has_magic(text):
        found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        what = f"the pattern '{text}' matches no image files"
    elif path.is_file():
        found, what = [str(path)], ""
    else:
        raise InputError(
            f"There is no folder, list or file at '{text}'. Give a folder of images, a text or Parquet file "
            "listing paths or URLs, or a glob such as 'photos/**/*.jpg'"
        )
    # Local files by absolute path: a cluster's workers run in another folder (the uploaded code's), and the paths
    # are the catalogue's ids, which the app reads from wherever it was started
    found = list(dict.fromkeys(os.path.abspath(p) if is_local(p) else p for p in found))
    if not found:
        raise InputError(what[0].upper() + what[1:])
    return found


def _parquet_list(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    column = next((name for name in PATH_COLUMNS if name in names), None)
    if column is None:
        raise InputError(
            f"The Parquet file '{path}' has no column named {' or '.join(PATH_COLUMNS)} (it has: {', '.join(names)}). "
            "Name the column of image paths or URLs 'path'"
        )
    return [str(value) for value in pq.read_table(path, columns=[column]).column(column).to_pylist() if value]


def is_local(source: str) -> bool:
    return "://" not in source


def read_bytes(source: str) -> bytes:
    """The bytes of one image file, local or remote; raises Unreadable with the reason."""
    try:
        if is_local(source):
            path = Path(source)
            if not path.is_file():
                raise Unreadable("no such file")
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise Unreadable(f"larger than {MAX_IMAGE_BYTES >> 20} MiB")
            return path.read_bytes()
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=URL_TIMEOUT) as response:
                data = response.read(MAX_IMAGE_BYTES + 1)
        else:
            import pyarrow.fs

            filesystem, inner = pyarrow.fs.FileSystem.from_uri(source)
            with filesystem.open_input_stream(inner) as stream:
                data = stream.read(MAX_IMAGE_BYTES + 1)
    except Unreadable:
        raise
    except urllib.error.HTTPError as error:
        raise Unreadable(f"download failed: HTTP {error.code}") from error
    except TimeoutError as error:
        raise Unreadable(f"download failed: no answer in {URL_TIMEOUT} s") from error
    except urllib.error.URLError as error:
        raise Unreadable("download failed: the server could not be reached") from error
    except PermissionError as error:
        raise Unreadable("permission denied") from error
    except FileNotFoundError as error:
        raise Unreadable("no such file") from error
    except ValueError as error:  # pyarrow: a scheme it has no filesystem for
        raise Unreadable(
            "could not be read: use a local path, an http(s):// URL or a URI pyarrow reads (s3://, gs://, hdfs://)"
        ) from error
    except OSError as error:
        raise Unreadable("could not be read: check the address and this machine's access to it") from error
    if len(data) > MAX_IMAGE_BYTES:
        raise Unreadable(f"larger than {MAX_IMAGE_BYTES >> 20} MiB")
    return data
