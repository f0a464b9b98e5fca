"""What every task pipeline shares: checkpoint lookup, load-error translation, and the batched call."""

from __future__ import annotations

import contextlib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import torch

from . import hub, runtime
from .errors import InputError, ModelLoadError, PipelineError
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


class Pipeline:
    """preprocess -> _forward -> postprocess over a list of inputs, in batches, without autograd.

    Subclasses set ``Options`` (a frozen dataclass with a ``verify()`` method) and implement the three stages.
    """

    Options: ClassVar[type]
    hub_files: ClassVar[list[str]]  # the files a hub snapshot of this kind of checkpoint needs
    batch_size: ClassVar[int] = 16  # inputs per forward pass: bounds memory on long lists

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype):
        self.spec, self.device, self.dtype = spec, device, dtype

    @property
    def description(self) -> str:
        return f"{self.spec.name} ({self.spec.source}) on {self.device.type}, {str(self.dtype).removeprefix('torch.')}"

    def options(self, **overrides: Any):
        known = {f.name for f in fields(self.Options)}
        unknown = set(overrides) - known
        if unknown:
            raise InputError(f"Unknown option(s) {', '.join(sorted(unknown))}; expected: {', '.join(sorted(known))}")
        options = replace(self.Options(), **overrides)
        options.verify()
        return options

    def __call__(self, inputs: Sequence, **overrides: Any) -> list:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise InputError(f"Pipelines take a list of inputs; got {type(inputs).__name__}. Wrap one input as [x]")
        options = self.options(**overrides)
        results: list = []
        for start in range(0, len(inputs), self.batch_size):
            batch = self.preprocess(list(inputs[start:start + self.batch_size]), options)
            with torch.inference_mode():
                outputs = self._forward(batch, options)
            results.extend(self.postprocess(outputs, batch, options))
        return results

    def preprocess(self, inputs: list, options) -> Any:
        raise NotImplementedError

    def _forward(self, batch: Any, options) -> Any:
        raise NotImplementedError

    def postprocess(self, outputs: Any, batch: Any, options) -> list:
        raise NotImplementedError
