"""Process-wide settings (profile, device, models directory) and the model cache.

Each model is loaded once per (task, source, device, dtype), lazily, on first use; concurrent first requests
wait for the one load in progress instead of starting their own. torch is imported when a device or dtype is
first resolved, not with this module: the UI starts (and serves its first page) before any framework loads.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from .errors import InputError
from .limits import limits

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float16", "bfloat16")  # names of torch dtypes

T = TypeVar("T")

# glibc malloc (see tune_allocator)
MALLOC_ARENAS = 2  # heaps shared by all threads
MALLOC_MMAP_THRESHOLD = 32 << 20  # blocks from this size on get their own mapping (32 MiB: glibc's largest)
MALLOC_TRIM_THRESHOLD = 128 << 20  # free memory kept at the top of a heap before any is returned to the system


@dataclass(frozen=True)
class Settings:
    profile: str = "default"  # which set of models: "default" (hub) or "toy" (bundled)
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    models_dir: Path | None = None  # where hub downloads are cached; None = the Hugging Face default
    cuda_dtype: str = "float16"  # half precision on GPUs; never bf16 on CPU (it ran ~400x slower)
    cache_dir: Path = Path("~/.cache/mm-demo-studio")  # the app's own files: embedding cache, uploaded galleries
    public: bool = False  # strangers use it (see public_from_env): registry models only, no internals shown


def _from_env() -> Settings:
    models_dir = os.environ.get("MM_MODELS_DIR")
    return Settings(
        profile=os.environ.get("MM_PROFILE", "default"),
        device=os.environ.get("MM_DEVICE", "auto"),
        models_dir=Path(models_dir) if models_dir else None,
        cuda_dtype=os.environ.get("MM_CUDA_DTYPE", "float16"),
        cache_dir=Path(os.environ.get("MM_CACHE_DIR") or Settings.cache_dir).expanduser(),
        public=public_from_env(),
    )


def public_from_env() -> bool:
    """Public mode from the environment: ``MM_PUBLIC=1``, or running on a Hugging Face Space (``SPACE_ID`` is set
    there); ``MM_PUBLIC=0`` turns it off even on a Space (e.g. a private one)."""
    chosen = os.environ.get("MM_PUBLIC", "").strip().lower()
    if chosen in ("1", "true", "yes", "on"):
        return True
    if chosen in ("0", "false", "no", "off"):
        return False
    return bool(os.environ.get("SPACE_ID"))


_settings = _from_env()


def settings() -> Settings:
    return _settings


def configure(**changes) -> Settings:
    """Change process-wide settings (``profile``, ``device``, ``models_dir``, ``cuda_dtype``, ``cache_dir``,
    ``public``)."""
    global _settings
    new = replace(_settings, **{k: v for k, v in changes.items() if v is not None})
    _verify(new)
    _settings = new
    return new


def _verify(settings: Settings) -> None:
    from .registry import PROFILES

    if settings.profile not in PROFILES:
        raise InputError(f"Unknown profile {settings.profile!r}; expected one of: {', '.join(PROFILES)}")
    if settings.device not in DEVICES and not settings.device.startswith("cuda:"):
        raise InputError(f"Unknown device {settings.device!r}; expected one of: {', '.join(DEVICES)}")
    if settings.cuda_dtype not in DTYPES:
        raise InputError(f"Unknown dtype {settings.cuda_dtype!r}; expected one of: {', '.join(DTYPES)}")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``auto`` (or None: the configured device) becomes CUDA when available, else CPU."""
    import torch

    name = str(device or _settings.device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"Device {name!r} was asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise InputError(f"Unknown device {name!r}; expected one of: {', '.join(DEVICES)}")
    return torch.device(name)


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """fp32 on CPU, the configured half precision on CUDA, unless ``dtype`` says otherwise."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        if dtype not in DTYPES:
            raise InputError(f"Unknown dtype {dtype!r}; expected one of: {', '.join(DTYPES)}")
        return getattr(torch, dtype)
    if device.type == "cuda":
        if _settings.cuda_dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return getattr(torch, _settings.cuda_dtype)
    return torch.float32


def tune_allocator() -> None:
    """Make glibc's malloc keep and reuse the memory of freed activations. Idempotent; no effect without glibc.

    A CPU forward pass allocates and frees buffers of tens of MB, layer after layer. By default glibc gives each
    such block its own mapping, or returns freed memory at the top of its heap, so every layer faults fresh zeroed
    pages in again: a 16-image caption run took 190,000-700,000 page faults and 5-10 % longer (19,000-56,000 with
    these settings; a 64 MiB trim threshold kept most of the faults, 256 MiB saved few more). Fewer heaps also
    keep freed memory from scattering over one heap per server thread: under load the process kept growing
    (+4.6 % over 800 requests; +1.2 % with 2 heaps, no slower). The arena limit only binds threads started after
    it, so the app calls this before its server starts. It changes the whole process, so library code never calls
    it: entry points do (app.py, the benchmarks).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX
    mallopt(-3, MALLOC_MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (also stops glibc moving the thresholds itself)
    mallopt(-1, MALLOC_TRIM_THRESHOLD)  # M_TRIM_THRESHOLD


def settle_heap() -> None:
    """Leave every object alive now (the libraries, the UI, the loaded models: ~570,000 of them) out of later garbage
    collections: a full collection then takes milliseconds instead of about half a second, during which it holds
    the GIL and every request stalls (``release_memory`` after heavy requests, and Python's own). What is frozen is
    still freed when nothing refers to it; only cycles among it are never looked for. Process-wide: entry points
    call it, once their long-lived objects exist (the app: after the warm-up)."""
    import gc

    gc.collect()
    gc.freeze()


def release_memory() -> None:
    """Hand memory freed by a finished request back to the system: collect garbage, then ask glibc to return the
    free pages of every heap (a heavy request's buffers otherwise stay mapped in the process). No effect without
    glibc."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ModelCache:
    """A thread-safe map from a key to a lazily built value; each value is built at most once.

    Values built with ``custom=True`` (models from a typed Hub id or directory) are bounded: past ``limit()`` of
    them (default: ``limits().custom_models``) the least recently used one is unloaded, with every entry built while
    it was being built (its parts) and every entry built later from one of them (``derived_from``). Other values
    (registry models) stay for the life of the process; a custom value that a registry name reaches becomes one of
    them.
    """

    def __init__(self, limit: Callable[[], int] | None = None):
        self._lock = threading.Lock()
        self._values: dict[tuple, object] = {}
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._custom: OrderedDict[tuple, None] = OrderedDict()  # custom keys, least recently used first
        self._parent: dict[tuple, tuple] = {}  # a part's key -> the key it was built for
        self._building = threading.local()  # this thread's keys being built, innermost last
        self._limit = limit or (lambda: limits().custom_models)

    def get(self, key: tuple, build: Callable[[], T], *, custom: bool = False, derived_from: object = None) -> T:
        """The value under ``key``, built by ``build()`` the first time (concurrent first calls wait for it).

        ``derived_from``: a cached value this one is made from; it is unloaded with that value."""
        stack = self._building.__dict__.setdefault("keys", [])
        parent = stack[-1] if stack else None
        limit = max(1, self._limit()) if custom and parent is None else 0  # read first: a bad setting fails early
        with self._lock:
            if derived_from is not None:
                parent = next((k for k, v in self._values.items() if v is derived_from), parent)
            if key in self._values:
                return self._touch(key, custom, parent)
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one builder per key; the others wait here, then find the value
            with self._lock:
                if key in self._values:
                    return self._touch(key, custom, parent)
            stack.append(key)
            try:
                value = build()  # a failure is not cached: the next request tries again
            finally:
                stack.pop()
            with self._lock:
                self._values[key] = value
                if parent is not None:
                    self._parent[key] = parent
                elif custom:
                    self._custom[key] = None
                unloaded = self._evict(limit) if limit else []
        if unloaded:
            del unloaded  # the last references the cache held: in-flight requests keep theirs until they finish
            release_memory()
        return value

    def _touch(self, key: tuple, custom: bool, parent: tuple | None):
        """A hit: a custom key becomes the most recently used; a registry load (no parent, not custom) of a custom
        value or of a part makes it permanent. Called under the lock."""
        if key in self._custom:
            if custom or parent is not None:
                self._custom.move_to_end(key)
            else:
                del self._custom[key]
        elif parent is None and not custom:
            self._parent.pop(key, None)
        return self._values[key]

    def _evict(self, limit: int) -> list[object]:
        """Unload the least recently used custom values past the limit; returns them. Called under the lock."""
        unloaded: list[object] = []
        while len(self._custom) > limit:
            oldest, _ = self._custom.popitem(last=False)
            doomed = {oldest}
            while True:  # its parts and what was derived from it, theirs, and so on
                more = {k for k, p in self._parent.items() if p in doomed}
                if more <= doomed:
                    break
                doomed |= more
            for key in doomed:
                if key in self._values:
                    unloaded.append(self._values.pop(key))
                self._key_locks.pop(key, None)
                self._parent.pop(key, None)
                self._custom.pop(key, None)
        return unloaded

    def items(self) -> list[tuple[tuple, object]]:
        with self._lock:
            return list(self._values.items())

    def custom_keys(self) -> list[tuple]:
        """The keys of custom values, least recently used first."""
        with self._lock:
            return list(self._custom)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._key_locks.clear()
            self._custom.clear()
            self._parent.clear()


cache = ModelCache()


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()} CPU threads"
