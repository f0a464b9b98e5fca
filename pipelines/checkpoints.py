"""Finding and reading checkpoints: the shipped or local directory, or a hub snapshot, and one clear error when a
checkpoint cannot be read. Imports no torch, so the UI can name and check models before any framework loads."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from . import hub, runtime
from .errors import ModelLoadError, PipelineError
from .registry import ModelSpec, local_path


def checkpoint_dir(spec: ModelSpec, allow_patterns: list[str]) -> Path:
    """A local directory for ``spec``: the shipped/local one, or a hub snapshot of just ``allow_patterns``."""
    if spec.is_hub:
        return hub.snapshot(spec.source, allow_patterns=allow_patterns, cache_dir=runtime.settings().models_dir)
    return local_path(spec)


def require_safetensors(spec: ModelSpec, path: Path) -> None:
    """We never unpickle weights: a checkpoint must carry them as safetensors."""
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(spec.name, f"{path} holds no .safetensors weights (only safetensors files are loaded, "
                             "never pickles)", "Convert the checkpoint with `save_pretrained(..., safe_serialization=True)`")


@contextlib.contextmanager
def translating_load_errors(spec: ModelSpec, path: Path | str) -> Iterator[None]:
    """Any failure while reading a checkpoint becomes one ModelLoadError naming the model, cause and fix."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as e:  # corrupt weights, wrong format, missing files: the libraries raise many kinds
        raise ModelLoadError(
            spec.name,
            f"the checkpoint at {path} could not be read as a {spec.task} model ({type(e).__name__}: {e})",
            "Check that it is a complete checkpoint of a supported kind, or choose another model",
        ) from e


def config_model_type(spec: ModelSpec, path: Path) -> str:
    """The ``model_type`` in a transformers checkpoint's config.json (to pick a backend for 'auto')."""
    import json

    config = path / "config.json"
    with translating_load_errors(spec, path):
        return json.loads(config.read_text())["model_type"]
