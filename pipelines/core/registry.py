"""Named model choices per task, the profiles that pick a whole set, and the model families: the one class that
serves each and its defaults (data in registry.json). Adding a family is one entry there plus one backend module."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, UnknownModelError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # pipelines/core/registry.py -> the repository
REGISTRY_FILE = Path(__file__).with_name("registry.json")
PROFILES = ("default", "toy")


@dataclass(frozen=True)
class ModelSpec:
    task: str
    name: str  # registry name, or what the user typed
    backend: str  # its family in registry.json ("families"), which names the class; "auto" = from its config
    source: str  # hub id, local directory, or package:NAME/SUBDIR
    fallback: str | None = None  # registry name to use when this one cannot be loaded
    about: str = ""
    revision: str | None = None  # a hub source's commit or branch (e.g. "refs/pr/3"); None = main
    own_defaults: tuple[tuple[str, Any], ...] = ()  # the entry's "defaults", over its family's (see ``defaults``)

    @property
    def is_hub(self) -> bool:
        return not (self.source.startswith(("package:", "/", ".")) or self.source.startswith("assets/"))


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(REGISTRY_FILE.read_text())


def tasks() -> tuple[str, ...]:
    return tuple(_data()["models"])


def available_models(task: str) -> list[str]:
    """The registry names for ``task``, in registry order."""
    return list(_models(task))


def _models(task: str) -> dict[str, dict]:
    models = _data()["models"]
    if task not in models:
        raise UnknownModelError(f"Unknown task {task!r}; expected one of: {', '.join(models)}")
    return models[task]


def profile_default(task: str, profile: str) -> str:
    profiles = _data()["profiles"]
    if profile not in profiles:
        raise UnknownModelError(f"Unknown profile {profile!r}; expected one of: {', '.join(profiles)}")
    return profiles[profile][task]


def resolve(task: str, model: str | None, profile: str, *, public: bool = False) -> ModelSpec:
    """A spec for a registry name, or (not ``public``) a local directory or a hub id; ``None`` or blank = the
    profile's choice.

    In public mode only registry names pass, decided before anything touches the disk: a visitor learns nothing of
    the server's files from the answer. A ``package:`` source is never taken from a typed name (it would import
    any installed package)."""
    models = _models(task)
    if model is not None and not isinstance(model, str):
        raise UnknownModelError(_unknown(task, str(model), models))
    model = (model or "").strip() or profile_default(task, profile)
    if model in models:
        entry = models[model]
        family(task, entry["backend"])  # a typo in registry.json is named here, not as a KeyError at load
        return ModelSpec(
            task,
            model,
            entry["backend"],
            entry["source"],
            entry.get("fallback"),
            entry.get("about", ""),
            entry.get("revision"),
            tuple(entry.get("defaults", {}).items()),
        )
    if public or model.startswith("package:"):
        raise UnknownModelError(_unknown(task, model, models))
    try:
        return _custom(task, model)
    except (OSError, ValueError, RuntimeError):  # a name the file system cannot look up (too long, NUL, ~nobody)
        raise _not_found(task, model) from None


def _custom(task: str, model: str) -> ModelSpec:
    """A spec for a typed Hub id, open_clip name or local directory (off public mode)."""
    from huggingface_hub.utils import validate_repo_id  # raises a ValueError for a name the Hub could not hold

    if task == "search" and not Path(model).expanduser().is_dir() and (hub_id := _open_clip_hub_id(model)):
        validate_repo_id(hub_id)
        return ModelSpec(task, model, "open_clip", hub_id)
    if Path(model).expanduser().is_dir():
        return ModelSpec(task, model, "auto", str(Path(model).expanduser().resolve()))
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        validate_repo_id(model)
        return ModelSpec(task, model, "auto", model)
    raise _not_found(task, model)


def _not_found(task: str, model: str) -> UnknownModelError:
    """Off public mode: ``model`` is none of the names a model box takes."""
    return UnknownModelError(
        f"Unknown {task} model {_shown(model)}: not a registry name, an existing local directory or a Hub id "
        f"(owner/name). Registry names: {', '.join(_models(task))}"
    )


def _unknown(task: str, model: str, models: dict) -> str:
    return f"Unknown {task} model {_shown(model)}. Choose one of: {', '.join(models)}"


def _shown(model: str, limit: int = 60) -> str:
    """A typed name as a message quotes it: cut short, so a huge name does not fill the message."""
    return repr(model if len(model) <= limit else model[:limit] + "...")


def is_registered(spec: ModelSpec) -> bool:
    """Whether ``spec`` is a registry entry of its task (not a typed Hub id or directory)."""
    return spec.name in _models(spec.task)


def checkpoint_key(spec: ModelSpec) -> str:
    """Where ``spec``'s checkpoint lives, the same for every way of naming it: a hub id, or a local directory as
    an absolute resolved path (a registry name and a typed path to its directory then load once)."""
    if spec.is_hub:
        return spec.source
    try:
        return str(local_path(spec).resolve())
    except (ModelLoadError, OSError, ValueError):  # missing: loading it will say so
        return spec.source


def families(task: str) -> dict[str, dict]:
    """{family name: {"class": "module:Class", "model_types": [...], "defaults": {...}}} for ``task``."""
    _models(task)  # an unknown task is named with the valid ones
    return {name: entry for name, entry in _data()["families"][task].items() if not name.startswith("_")}


def family(task: str, name: str) -> dict:
    """The registry's entry for the model family ``name`` of ``task``."""
    known = families(task)
    if name not in known:
        raise UnknownModelError(f"Unknown {task} model family {name!r}; expected one of: {', '.join(known)}")
    return known[name]


def family_of_model_type(task: str, model_type: str) -> str | None:
    """The family serving checkpoints whose config.json says ``model_type`` (None: no family of ``task`` does)."""
    return next((name for name, entry in families(task).items() if model_type in entry["model_types"]), None)


def family_served_by(task: str, cls: type) -> str | None:
    """The family whose registry entry names ``cls`` as its class (None for a class no family names)."""
    name = f"{cls.__module__.removeprefix('pipelines.')}:{cls.__qualname__}"
    return next((family for family, entry in families(task).items() if entry["class"] == name), None)


def defaults(spec: ModelSpec) -> dict[str, Any]:
    """What options left at None become for ``spec``: its family's defaults, then its own entry's on top.

    A checkpoint of no known family yet ("auto", before its config is read) has none."""
    known = families(spec.task)
    base = known[spec.backend]["defaults"] if spec.backend in known else {}
    return {**base, **dict(spec.own_defaults)}


def _open_clip_hub_id(model: str) -> str | None:
    """The hub id behind an open_clip name: 'hf-hub:owner/name', or 'ARCH:TAG' such as 'ViT-B-32:laion2b_s34b_b79k'."""
    if model.startswith("hf-hub:"):
        return model.removeprefix("hf-hub:").strip("/")
    arch, colon, tag = model.partition(":")
    if not colon or "/" in model:
        return None
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    hub_id = get_pretrained_cfg(arch, tag).get("hf_hub", "").strip("/")
    if not hub_id:
        tags = [t for t in list_pretrained_tags_by_model(arch) if get_pretrained_cfg(arch, t).get("hf_hub")]
        raise UnknownModelError(
            f"open_clip has no Hub checkpoint for {arch!r} with pretrained tag {tag!r}. "
            + (f"Tags for {arch}: {', '.join(tags)}" if tags else "See open_clip.list_pretrained() for ARCH:TAG pairs")
        )
    return hub_id


def local_path(spec: ModelSpec) -> Path:
    """The directory of a local or packaged checkpoint; a clear error if it is missing."""
    if spec.source.startswith("package:"):
        if not is_registered(spec):  # only the registry names packages: a typed name never imports one
            raise UnknownModelError(_unknown(spec.task, spec.name, _models(spec.task)))
        package, _, subdir = spec.source.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelLoadError(
                spec.name,
                f"the Python package '{package}' is not installed",
                f"Install it with `pip install {package.replace('_', '-')}`",
            )
        path = Path(list(found.submodule_search_locations)[0]) / subdir
    else:
        path = Path(spec.source)
        path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_dir():
        raise ModelLoadError(
            spec.name,
            f"the directory {path} does not exist",
            "Give an existing model directory, or re-create the toy models with `python scripts/train_toy.py`",
        )
    return path
