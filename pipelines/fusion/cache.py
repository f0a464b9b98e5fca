"""Embeddings of the Fusion lab's examples, in memory: each image (by content) and text is encoded once per CLIP
space (by its key), so retraining, another seed or other heads encode nothing again."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..core.errors import InputError

CACHED_VECTORS = 8192  # embeddings kept (64 to 768 floats each), the least recently used dropped first

_cache: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def digest(image) -> str:
    """A content hash of an image given as a path, bytes, PIL image or array (the cache's key)."""
    hashed = hashlib.sha256()
    if isinstance(image, (str, Path)):
        try:
            hashed.update(Path(image).read_bytes())
        except OSError:
            hashed.update(f"unreadable:{image}".encode())  # load_image will say what is wrong
    elif isinstance(image, bytes):
        hashed.update(image)
    elif isinstance(image, Image.Image):
        hashed.update(f"{image.mode}{image.size}".encode())
        hashed.update(image.tobytes())
    else:
        hashed.update(np.ascontiguousarray(image).tobytes())
    return hashed.hexdigest()


def _cached(key: tuple[str, str, str]) -> np.ndarray | None:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def _remember(key: tuple[str, str, str], vector: np.ndarray) -> None:
    with _cache_lock:
        _cache[key] = vector
        while len(_cache) > CACHED_VECTORS:
            _cache.popitem(last=False)


def embed_pairs(space, images: Sequence, texts: Sequence[str], names: Sequence[str] | None = None):
    """(N, D) image and (N, D) text embeddings of ``space``, each image and text encoded once (then from memory). An
    image that cannot be read is refused naming its row."""
    digests = [digest(image) for image in images]
    image_keys = [(space.key, "image", digest) for digest in digests]
    text_keys = [(space.key, "text", text) for text in texts]
    missing = list(dict.fromkeys(i for i, key in enumerate(image_keys) if _cached(key) is None))
    unique: dict[str, int] = {}
    for i in missing:
        unique.setdefault(digests[i], i)
    pixels = []
    for i in unique.values():
        try:
            pixels.append(space.pixels(images[i]))
        except InputError as error:
            if names:  # the lab's examples: the visitor's row and file name
                which = f"Row {i + 1}'s image {names[i]!r}"
            else:
                which = f"Image {i + 1} of {len(images)}" if len(images) > 1 else "The image"
            raise InputError(f"{which} cannot be used: {error}") from error
    if pixels:
        for i, vector in zip(unique.values(), space.embed_pixels(pixels)):
            _remember(image_keys[i], vector)
    new_texts = list(dict.fromkeys(text for text, key in zip(texts, text_keys) if _cached(key) is None))
    if new_texts:
        for text, vector in zip(new_texts, space.embed_texts(new_texts)):
            _remember((space.key, "text", text), vector)
    return (
        np.stack([_cached(key) for key in image_keys]).astype(np.float32),
        np.stack([_cached(key) for key in text_keys]).astype(np.float32),
    )
