"""Model pipelines for the demo studio: usable from scripts, notebooks and tests (no UI code here).

    import pipelines
    captioner = pipelines.load("caption")            # the configured profile's captioner, loaded once
    [caption] = captioner(["photo.jpg"])
    print(caption.text)

Layout: ``core/`` (registry, runtime, hub, checkpoints, io, errors, batching, the Pipeline base), one package per
task (``caption/``, ``search/``, ``vqa/``, ``speech/``), ``fusion/`` (the shared CLIP space and the fusion operators),
``fast/`` (guarded accelerations), ``studio.py`` (every task on one input), and the CLIs ``download.py`` and
``index.py`` (``python -m pipelines.download``, ``python -m pipelines.index``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import os
import secrets
import sys

from .core import registry, runtime
from .core.errors import InputError, ModelLoadError, PipelineError, UnknownModelError
from .core.registry import ModelSpec, available_models

__all__ = [
    "load",
    "available_models",
    "default_model",
    "loaded_models",
    "preload",
    "system_info",
    "error_id",
    "visitor_message",
    "InputError",
    "ModelLoadError",
    "PipelineError",
    "UnknownModelError",
]

log = logging.getLogger(__name__)

# (task, requested model) -> (fallback used, why): what the System panel reports.
fallbacks: dict[tuple[str, str], tuple[str, str]] = {}
FUSION_HEAD = "fusion-head"  # load(FUSION_HEAD, folder): heads the Fusion lab trained and exported


def load(task: str, model: str | None = None, *, device=None, dtype=None):
    """The pipeline for ``task`` (caption, search, ask, transcribe, chat), loaded once and cached.

    ``model`` is a registry name (see ``available_models(task)``), or outside public mode a local directory or a Hub
    id; None picks the configured profile's model. ``device`` is auto/cpu/cuda (default: the configured one);
    ``dtype`` defaults to fp32 on CPU and half precision on CUDA. Registry models stay loaded; of typed models
    (Hub ids, directories) at most ``limits().custom_models`` do, the least recently used unloaded first.

    ``load("fusion-head", folder)``: the heads the Fusion lab exported there (fusion_heads.safetensors and
    fusion_heads.json; tensors only, no code runs), on the encoder their config names; call it with a list of
    (image, text) pairs. A folder is a typed path, so public mode refuses it.
    """
    settings = runtime.settings()
    if task == FUSION_HEAD:
        return _fusion_heads(model, public=settings.public, device=device, dtype=dtype)
    spec = registry.resolve(task, model, settings.profile, public=settings.public)
    device = runtime.resolve_device(device)
    dtype = runtime.resolve_dtype(device, dtype)
    key = (task, registry.checkpoint_key(spec), spec.revision, str(device), str(dtype))
    custom = not registry.is_registered(spec)
    try:
        return runtime.cache.get(key, lambda: _build(spec, device, dtype), custom=custom)
    except ModelLoadError as error:
        if not spec.fallback:
            raise
        log.warning("%s; falling back to %s", error, spec.fallback)
        fallback = load(task, spec.fallback, device=device, dtype=dtype)
        fallbacks[(task, spec.name)] = (spec.fallback, error.cause)
        return runtime.cache.get(key, lambda: fallback)  # later calls go straight to the fallback


def _fusion_heads(folder, *, public: bool, device, dtype):
    if public:
        raise UnknownModelError(
            "Fusion heads load from a folder, and public mode loads no typed paths. Run them outside public mode"
        )
    folder = os.fspath(folder) if isinstance(folder, os.PathLike) else folder
    if not isinstance(folder, str) or not folder.strip():
        raise UnknownModelError(
            "Name the folder holding the Fusion lab's download: pipelines.load('fusion-head', 'my-heads/')"
        )
    from .fusion.heads import FusionHeads  # imports torch when heads are loaded, not with this package
    from .fusion.lab import attach

    heads = FusionHeads.read(folder.strip())
    return attach(heads, load("search", heads.config.get("encoder"), device=device, dtype=dtype).space)


def _build(spec: ModelSpec, device, dtype):
    log.info("loading %s model %r on %s (%s)", spec.task, spec.source, device, dtype)  # %r: a typed name is one line
    return pipeline_class(spec).load(spec, device, dtype)


def pipeline_class(spec: ModelSpec) -> type:
    """The class that serves ``spec``, as its family in the registry names it (imported on demand: each pulls in
    its own libraries)."""
    backend = spec.backend if spec.backend != "auto" else _detect_backend(spec)
    module_name, class_name = registry.family(spec.task, backend)["class"].split(":")
    return getattr(importlib.import_module(f".{module_name}", __name__), class_name)


def _detect_backend(spec: ModelSpec) -> str:
    """The family of a checkpoint the registry does not name, from its files (config.json's model_type)."""
    families = registry.families(spec.task)
    if len(families) == 1:
        return next(iter(families))
    model_type = _model_type(spec)
    family = registry.family_of_model_type(spec.task, model_type)
    if family is None:
        supported = [kind for entry in families.values() for kind in entry["model_types"]]
        raise ModelLoadError(
            spec.name,
            f"it is a '{model_type}' model, which the {spec.task} tab cannot run",
            f"Choose a model of type {', '.join(supported)}, e.g. {available_models(spec.task)[0]}",
        )
    return family


def _model_type(spec: ModelSpec) -> str:
    """config.json's model_type, or "ctranslate2" for a CTranslate2 export (transformers never writes model.bin)."""
    from .core.checkpoints import checkpoint_dir, config_model_type

    path = checkpoint_dir(spec, ["config.json", "model.bin"])
    if (path / "model.bin").is_file():
        return "ctranslate2"
    return config_model_type(spec, path)


def default_model(task: str) -> str:
    """The registry name the configured profile uses for ``task``."""
    return registry.profile_default(task, runtime.settings().profile)


def loaded_models() -> list[str]:
    """One line per loaded pipeline: what it is and where it runs. In public mode: registry models only, by name,
    with their device, precision and whether each acceleration is on (no sources, paths or failure details)."""
    if runtime.settings().public:
        return _public_models()
    lines = [value.description for _, value in runtime.cache.items() if hasattr(value, "description")]
    for (task, wanted), (used, cause) in fallbacks.items():
        lines.append(f"{task}: {wanted} could not be loaded ({cause}); using {used}")
    return sorted(set(lines))


def _public_models() -> list[str]:
    lines = []
    for _, value in runtime.cache.items():
        spec = getattr(value, "spec", None)
        if not hasattr(value, "description") or spec is None or not registry.is_registered(spec):
            continue
        where = f"{spec.task}: {spec.name} on {value.device.type}, {str(value.dtype).removeprefix('torch.')}"
        paths = [f"{outcome.name}: {'accelerated' if outcome.active else 'stock'}" for outcome in value.accelerations]
        lines.append("; ".join([where, *paths]) if paths else f"{where}; stock")
    for (task, wanted), (used, _) in fallbacks.items():
        lines.append(f"{task}: {wanted} is unavailable; using {used}")
    return sorted(set(lines))


def error_id() -> str:
    """A short random id that ties what a visitor is shown to the server's log line."""
    return secrets.token_hex(4)


def visitor_message(error: PipelineError) -> str:
    """The message a visitor may be shown for ``error``: its own, except for a ModelLoadError in public mode (a
    server problem there: only registry names load), whose details go to the log at warning level under an error
    id, and the visitor gets one generic line with that id. For parts of a result that fail on their own (a batch
    item, a studio part) and for whole requests (demos.common.user_errors)."""
    if not (runtime.settings().public and isinstance(error, ModelLoadError)):
        return str(error)
    reference = error_id()
    log.warning("model unavailable [error id %s]: %s", reference, " ".join(str(error).split()))
    return (
        f"This model is unavailable right now (error id {reference}). Choose another model from the list, "
        "or try again later."
    )


def preload(tasks=None) -> dict[str, str]:
    """Load the configured profile's models now; returns {task: error message} for those that failed."""
    failures = {}
    for task in tasks or registry.tasks():
        try:
            load(task)
        except PipelineError as error:
            failures[task] = str(error)
    return failures


def system_info() -> dict[str, str]:
    """What the System panel shows: profile, device, dtype, and (outside public mode) the models directory and
    library versions."""
    from importlib.metadata import PackageNotFoundError, version

    settings = runtime.settings()
    info = {"profile": settings.profile}
    try:
        device = runtime.resolve_device()
        info["device"] = f"{device} ({runtime.device_name(device)})"
        info["dtype"] = str(runtime.resolve_dtype(device)).removeprefix("torch.")
    except InputError as error:  # e.g. started with --device cuda on a machine without a GPU: the panel says so
        info["device"] = str(error)
    if settings.public:  # strangers see what runs, not where the server keeps it or which library versions
        info["mode"] = "public: models from the list only"
        return info
    info["models dir"] = str(settings.models_dir or "Hugging Face default cache")
    for package in ("torch", "transformers", "open_clip_torch", "faster-whisper", "ctranslate2", "gradio"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    return info


# Modules that moved when pipelines/ was grouped by concern (old name -> new, under pipelines): the old names still
# import, as the same module objects, so scripts written against them keep working. New code uses the new names.
MOVED = {
    "base": "core.base",
    "batching": "core.batching",
    "checkpoints": "core.checkpoints",
    "errors": "core.errors",
    "hf": "core.hf",
    "hub": "core.hub",
    "io": "core.io",
    "registry": "core.registry",
    "runtime": "core.runtime",
    "caption_options": "caption.options",
    "rerank": "caption.rerank",
    "retrieval": "search.retrieval",
    "gallery": "search.gallery",
    "classify": "search.classify",
    "heatmap": "search.heatmap",
    "subtitles": "speech.subtitles",
}


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import pipelines.<old name>`` with the module at its new place (asked only after the files)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        return importlib.util.spec_from_loader(fullname, self) if package == __name__ and name in MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # the import system sets __spec__ to the old name's; exec puts it back
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # nothing to run: it was executed at its new place


if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
    sys.meta_path.append(_OldNames())


def __getattr__(name: str):
    """``pipelines.<old name>`` as an attribute (e.g. ``pipelines.rerank.rerank``), imported on first use."""
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
