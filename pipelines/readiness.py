"""Is each task's model ready to answer, and making it so: presence on disk, download with progress, and warm-up.

    from pipelines import readiness
    readiness.warm_up()                  # a background thread: load the profile's present models, run each once
    readiness.status("caption")          # Status(state="loading", ...) until the first click would be fast
    readiness.download(["caption"], on_progress=print)   # fetch from the Hub, then load and run it once

What a task needs is the configured profile's registry model for it. "Present" means its files are on this machine
(a shipped directory, or a complete snapshot in the models directory / Hugging Face cache), checked without the
network. Warm-up loads only present models: an absent one is reported, never downloaded behind the visitor's back
(an absent Transcribe model's fallback, which is shipped, is warmed instead). Nothing here raises for a model that
cannot load: the failure is recorded and ``status`` reports it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageDraw

from .core import hub, registry, runtime
from .core.errors import ModelLoadError, PipelineError
from .core.registry import ModelSpec

log = logging.getLogger(__name__)

# What ``status`` says of a task's profile model
ABSENT = "absent"  # its files are not on this machine
DOWNLOADING = "downloading"  # being fetched from the Hub (bytes so far / total in the Status)
LOADING = "loading"  # warm-up is loading it (or waits to) and running it once
PRESENT = "present"  # on this machine, loads on first use (no warm-up asked)
READY = "ready"  # loaded (by the warm-up, a download, or a request) and, by the first two, run once
FAILED = "failed"  # present but it would not load or run (the message says why)

POLL_SECONDS = 0.5  # how often a download's progress is measured
WARM_SAMPLE_RATE = 16_000  # Hz, of the warm-up recording (what Whisper expects)


@dataclass(frozen=True)
class Status:
    task: str
    model: str  # the registry name the profile uses
    state: str  # ABSENT, DOWNLOADING, LOADING, PRESENT, READY or FAILED
    message: str = ""  # FAILED: why (already what a visitor may be shown)
    done_bytes: int = 0  # DOWNLOADING: bytes in the cache so far
    total_bytes: int | None = None  # DOWNLOADING: what the download fetches, when the Hub listed sizes

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)


_lock = threading.Lock()
_states: dict[tuple[str, str], Status] = {}  # (profile, task) -> what warm-up or a download last said
_present: dict[tuple, bool] = {}  # (source, revision, models dir) -> True once found on disk
_sizes: dict[tuple, int | None] = {}  # (source, revision) -> bytes a download fetches (None: the Hub gave none)
_downloads: dict[str, threading.Lock] = {}  # task -> held while its model downloads (one download per task)
_warmup: threading.Thread | None = None


def spec(task: str) -> ModelSpec:
    """The registry entry the configured profile uses for ``task``."""
    return registry.resolve(task, None, runtime.settings().profile)


def present(task: str) -> bool:
    """Whether ``task``'s profile model is on this machine, complete enough to load without the network."""
    return spec_present(spec(task))


def spec_present(model: ModelSpec) -> bool:
    key = (model.source, model.revision, str(runtime.settings().models_dir))
    with _lock:
        if _present.get(key):
            return True  # once there, files stay (a failed load shows as FAILED instead)
    found = _on_disk(model)  # looked at again each time while absent: a download elsewhere may bring it
    if found:
        with _lock:
            _present[key] = True
    return found


def _on_disk(model: ModelSpec) -> bool:
    if not model.is_hub:
        try:
            registry.local_path(model)
        except PipelineError:
            return False
        return True
    from . import pipeline_class
    from .core.checkpoints import weights_files

    path = _snapshot_dir(model)
    if path is None:
        return False
    try:
        weights_files(model, path, pipeline_class(model).hub_files)
    except PipelineError:  # a snapshot without the weights (an interrupted download)
        return False
    return True


def _snapshot_dir(model: ModelSpec) -> Path | None:
    """The cached snapshot of ``model``'s revision (the Hugging Face cache layout), read without the network."""
    repo = _cache_root() / f"models--{model.source.replace('/', '--')}"
    revision = model.revision or "main"
    ref = repo / "refs" / revision
    try:
        commit = ref.read_text().strip() if ref.is_file() else revision  # a pinned commit has no ref file
    except OSError:
        return None
    path = repo / "snapshots" / commit
    return path if path.is_dir() else None


def _cache_root() -> Path:
    from huggingface_hub import constants

    return Path(runtime.settings().models_dir or constants.HF_HUB_CACHE)


def download_size(task: str) -> int | None:
    """Bytes a download of ``task``'s profile model fetches, as the Hub lists them; None when the Hub cannot be
    reached or gives no sizes (a shipped model: 0)."""
    model = spec(task)
    if not model.is_hub:
        return 0
    key = (model.source, model.revision)
    with _lock:
        if key in _sizes:
            return _sizes[key]
    size = _listed_size(model)
    if size is not None:
        with _lock:
            _sizes[key] = size
    return size


def _listed_size(model: ModelSpec) -> int | None:
    if not hub.reachable():
        return None
    from huggingface_hub import HfApi

    from . import pipeline_class
    from .core.checkpoints import hub_files

    try:
        wanted = set(hub_files(model, pipeline_class(model).hub_files) or [])
        info = HfApi().model_info(
            model.source, revision=model.revision, files_metadata=True, timeout=hub.PROBE_TIMEOUT * 10
        )
    except Exception as error:  # offline half-way, or a repo without loadable weights: the size stays unknown
        log.info("no download size for %s: %s: %s", model.source, type(error).__name__, error)
        return None
    sizes = [s.size for s in info.siblings or [] if s.rfilename in wanted]
    if len(sizes) != len(wanted) or any(size is None for size in sizes):
        return None
    return sum(sizes)


def status(task: str) -> Status:
    """What ``task``'s profile model is doing now (a look at memory and at the disk: no network)."""
    name = registry.profile_default(task, runtime.settings().profile)
    with _lock:
        recorded = _states.get((runtime.settings().profile, task))
    if recorded is not None and recorded.state == DOWNLOADING:
        return _with_bytes(recorded)
    if recorded is not None and not (recorded.state == FAILED and _loaded(task, name)):  # a later request loaded it
        return recorded
    if _loaded(task, name):
        return Status(task, name, READY)
    return Status(task, name, PRESENT if present(task) else ABSENT)


def _loaded(task: str, name: str) -> bool:
    for _, value in runtime.cache.items():
        model = getattr(value, "spec", None)
        if model is not None and (model.task, model.name) == (task, name):
            return True
    return False


def statuses(tasks: Iterable[str] | None = None) -> list[Status]:
    return [status(task) for task in tasks or registry.tasks()]


def _record(task: str, state: str, **fields) -> None:
    name = registry.profile_default(task, runtime.settings().profile)
    with _lock:
        _states[(runtime.settings().profile, task)] = Status(task, name, state, **fields)


def _shown(error: PipelineError) -> str:
    from . import visitor_message

    return visitor_message(error)


# --- warm-up -------------------------------------------------------------------------------------------------


def warm_up(tasks: Iterable[str] | None = None) -> threading.Thread:
    """Load the profile's present models and run each once on a tiny input, on a background thread (returned,
    already started). Each task shows LOADING until it is done, then READY, or FAILED with the message."""
    global _warmup
    tasks = list(tasks or registry.tasks())
    for task in tasks:
        if present(task):
            _record(task, LOADING)
    thread = threading.Thread(target=_warm_all, args=(tasks,), name="warm-up", daemon=True)
    with _lock:
        _warmup = thread
    thread.start()
    return thread


def warming() -> bool:
    """Whether a warm-up thread is still at work."""
    with _lock:
        return _warmup is not None and _warmup.is_alive()


def _warm_all(tasks: list[str]) -> None:
    started = time.monotonic()
    for task in tasks:
        try:
            _warm(task)
        except Exception:  # a bug must not take the server down: the visitor's first click will say more
            log.exception("warm-up of %s failed unexpectedly", task)
            _record(task, FAILED, message="This model could not be prepared; the server log says why.")
    log.info("warm-up done in %.1f s: %s", time.monotonic() - started, {s.task: s.state for s in statuses(tasks)})


def _warm(task: str) -> None:
    """Load ``task``'s model and run it once; an absent model with a shipped fallback warms the fallback."""
    from . import load

    model = spec(task)
    if not present(task):
        if model.fallback and spec_present(registry.resolve(task, model.fallback, runtime.settings().profile)):
            try:  # offline, load() falls back at once and remembers it; online it would download: the fallback only
                run_once(task, load(task) if not hub.reachable() else load(task, model.fallback))
            except PipelineError as error:  # the first click will say it; the panel still offers the download
                log.warning("warm-up: the %s fallback did not load: %s", task, " ".join(str(error).split()))
        return  # ABSENT: the tab's panel offers the download
    try:
        run_once(task, load(task))
    except PipelineError as error:
        log.warning("warm-up: the %s model did not load: %s", task, " ".join(str(error).split()))
        _record(task, FAILED, message=_shown(error))
        return
    _record(task, READY)


def run_once(task: str, pipeline) -> None:
    """One tiny request, so that lazy initialisation (kernels, caches, the first allocation) is done before a
    visitor's first one."""
    image = _tiny_image()
    if task == "caption":
        pipeline([image])
    elif task == "search":
        pipeline(["a red circle"])
    elif task == "ask":
        pipeline([(image, "what color is the shape?")])
    elif task == "chat":  # two new tokens: the vision tower and the decoder each run once
        content = [{"type": "image", "image": image}, {"type": "text", "text": "What color is the shape?"}]
        pipeline([[{"role": "user", "content": content}]], max_new_tokens=2)
    elif task == "transcribe":
        t = np.arange(WARM_SAMPLE_RATE, dtype=np.float32) / WARM_SAMPLE_RATE  # 1 s of a 220 Hz tone
        pipeline([(WARM_SAMPLE_RATE, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))])


def _tiny_image() -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 30, 30))
    return image


# --- download ------------------------------------------------------------------------------------------------


def download(tasks: Iterable[str], on_progress: Callable[[Status], None] | None = None) -> list[Status]:
    """Fetch the absent profile models of ``tasks`` from the Hub (registry models only), reporting DOWNLOADING
    statuses with bytes to ``on_progress`` as it goes; then load and run each once. Returns the final statuses
    (READY, or FAILED with what to do). A second caller for the same task waits for the first one's download."""
    tasks = list(tasks)  # walked more than once below
    for task in tasks:
        if present(task):
            continue
        with _lock:
            gate = _downloads.setdefault(task, threading.Lock())
        with gate:
            if not present(task):
                _download(task, on_progress)
    for task in tasks:
        if status(task).state == LOADING:  # just downloaded: load it and run it once, as the warm-up would
            _warm(task)
    return statuses(tasks)


def _download(task: str, on_progress: Callable[[Status], None] | None) -> None:
    from .download import fetch

    total = download_size(task)
    _record(task, DOWNLOADING, total_bytes=total)
    outcome: dict[str, BaseException] = {}

    def fetch_it():
        try:
            fetch(task)
        except BaseException as error:  # handed to the waiting thread below
            outcome["error"] = error

    worker = threading.Thread(target=fetch_it, name=f"download-{task}", daemon=True)
    worker.start()
    while worker.is_alive():
        if on_progress is not None:
            on_progress(status(task))
        worker.join(POLL_SECONDS)
    error = outcome.get("error")
    if error is None and present(task):
        _record(task, LOADING)
        if on_progress is not None:
            on_progress(status(task))
        return
    model = spec(task)
    if error is not None and not isinstance(error, PipelineError):
        log.error("downloading the %s model failed", task, exc_info=error)
        error = ModelLoadError(model.name, "the download failed", "Try again, or run `python -m pipelines.download`")
    if error is None:
        error = ModelLoadError(model.name, "the download did not bring its weights", "Try the download again")
    _record(task, FAILED, message=_shown(error))


def _with_bytes(recorded: Status) -> Status:
    model = spec(recorded.task)
    return Status(
        recorded.task,
        recorded.model,
        DOWNLOADING,
        done_bytes=_cached_bytes(model),
        total_bytes=recorded.total_bytes,
    )


def _cached_bytes(model: ModelSpec) -> int:
    """Bytes of ``model``'s blobs in the cache, finished or still being written (a download's progress)."""
    blobs = _cache_root() / f"models--{model.source.replace('/', '--')}" / "blobs"
    try:
        return sum(entry.stat().st_size for entry in blobs.iterdir() if entry.is_file())
    except OSError:
        return 0


def forget() -> None:
    """Forget what was measured and recorded (tests; after the cache or the profile changed)."""
    with _lock:
        _states.clear()
        _present.clear()
        _sizes.clear()
