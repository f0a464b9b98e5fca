"""Finding and reading checkpoints: the loading policy, in one place.

A checkpoint family (transformers, open_clip, CTranslate2) is a ``Layout``: the files beside the weights (config,
processor, tokenizer) and the weight files it may carry, in order of preference. Safetensors come first; PyTorch
``.bin`` weights are read only through torch's restricted unpickler (``weights_only=True``), which rebuilds tensors
and nothing else, so a pickle that would run code is refused before anything runs. A hub snapshot fetches the
files beside the weights and the one weight format chosen from the repo's listing, never the others (TensorFlow,
Flax, ONNX, or a transformers copy inside an open_clip repo).

Imports no torch at module level, so the UI can name and check models before any framework loads.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from . import hub, runtime
from .errors import ModelLoadError, PipelineError
from .registry import ModelSpec, local_path

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SAFE_TORCH_LOAD = (2, 6)  # torch versions before this let a crafted pickle escape weights_only (CVE-2025-32434)


@dataclass(frozen=True)
class Weights:
    """One way a checkpoint may store its weights: a single file, or an index naming shards."""

    name: str  # the file, or the shard index (e.g. model.safetensors.index.json)
    shards: str | None = None  # fnmatch pattern of the shard files when ``name`` is an index

    def files_in(self, listing: list[str]) -> list[str]:
        """The files of this choice among a repo's ``listing`` ([] if it is not there)."""
        if self.name not in listing:
            return []
        if self.shards is None:
            return [self.name]
        return [self.name] + sorted(f for f in listing if fnmatch.fnmatchcase(f, self.shards))


@dataclass(frozen=True)
class Layout:
    """A checkpoint family: the files a loader reads beside the weights, and the weights it accepts, best first."""

    name: str
    support: tuple[str, ...]  # fnmatch patterns of the top-level config / processor / tokenizer files
    weights: tuple[Weights, ...]  # in order of preference: the first one present is the one loaded
    not_support: tuple[str, ...] = ()  # patterns that ``support`` would match but are not needed

    def support_files(self, listing: list[str]) -> list[str]:
        return sorted(f for f in listing if "/" not in f and self._is_support(f))

    def _is_support(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.support) and not any(
            fnmatch.fnmatchcase(name, p) for p in self.not_support
        )

    def chosen_weights(self, listing: list[str]) -> list[str]:
        """The files of the most preferred weights in ``listing`` ([] if it holds none we load)."""
        for choice in self.weights:
            if files := choice.files_in(listing):
                return files
        return []

    def weight_names(self) -> str:
        return ", ".join(choice.name for choice in self.weights)

    def patterns(self) -> list[str]:
        """Every file this layout could use (for a cache lookup when the Hub cannot be listed)."""
        return list(self.support) + [p for w in self.weights for p in (w.name, w.shards) if p]


TRANSFORMERS = Layout(
    "transformers",
    # configs, vocab.txt / vocab.json + merges.txt, SentencePiece models, chat templates (transformers 5 saves
    # chat_template.jinja; older repos hold chat_template.json)
    support=("*.json", "*.txt", "*.model", "*.jinja"),
    not_support=("*.index.json",),  # weight indexes belong to the weights chosen (not Flax's or TensorFlow's)
    weights=(
        Weights("model.safetensors"),
        Weights("model.safetensors.index.json", "model-*-of-*.safetensors"),
        Weights("pytorch_model.bin"),
        Weights("pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin"),
    ),
)
OPEN_CLIP = Layout(
    "open_clip",
    support=("open_clip_config.json", "tokenizer*", "special_tokens_map.json", "vocab*", "merges.txt", "*.model"),
    weights=(
        Weights("open_clip_model.safetensors"),
        Weights("open_clip_pytorch_model.safetensors"),
        Weights("open_clip_pytorch_model.bin"),
    ),
)
CTRANSLATE2 = Layout(
    "ctranslate2",
    support=("config.json", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"),
    weights=(Weights("model.bin"),),  # CTranslate2's own format, not a pickle
)


def checkpoint_dir(spec: ModelSpec, layout: Layout | list[str]) -> Path:
    """A local directory for ``spec``: the shipped/local one, or a hub snapshot of what ``layout`` needs.

    Given a list of patterns instead of a layout, the snapshot holds just the files matching them.
    """
    if not spec.is_hub:
        return local_path(spec)
    if isinstance(layout, Layout):
        files = hub_files(spec, layout)
        patterns = files if files is not None else layout.patterns()  # unlisted (offline): whatever the cache has
    else:
        patterns = layout
    return hub.snapshot(
        spec.source, revision=spec.revision, allow_patterns=patterns, cache_dir=runtime.settings().models_dir
    )


def hub_files(spec: ModelSpec, layout: Layout) -> list[str] | None:
    """The files a hub snapshot of ``spec`` needs: support files and the one weight format chosen from the repo's
    listing. None when the Hub cannot be reached (the cache is all there is); a clear error when the repo holds no
    weights this layout loads."""
    listing = hub.list_files(spec.source, revision=spec.revision)
    if listing is None:
        return None
    weights = layout.chosen_weights(listing)
    if not weights:
        found = [f for f in listing if f.endswith((".bin", ".safetensors", ".h5", ".msgpack", ".onnx", ".pt", ".pth"))]
        raise ModelLoadError(
            spec.name,
            f"the Hub repo {spec.source}{_at(spec)} holds none of the weight files this model kind loads "
            f"({layout.weight_names()}); it has {', '.join(found) or 'no weights at all'}",
            "Choose another model, or a revision of the repo that carries one of those files",
        )
    return layout.support_files(listing) + weights


def weights_files(spec: ModelSpec, path: Path, layout: Layout) -> list[Path]:
    """The weight files of ``path`` the loader will read (the most preferred present; shards of an index are
    checked to exist). A clear error when there are none: a library would otherwise start an untrained model."""
    listing = sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    chosen = layout.chosen_weights(listing)
    if not chosen:
        raise ModelLoadError(
            spec.name,
            f"{path} holds no weights this model kind loads (expected one of {layout.weight_names()})",
            "Download the model again (`python -m pipelines.download`), or give a complete checkpoint",
        )
    if chosen[0].endswith(".index.json"):
        with translating_load_errors(spec, path):
            shards = sorted(set(json.loads((path / chosen[0]).read_text())["weight_map"].values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise ModelLoadError(
                spec.name,
                f"{path} lacks the weight shards {', '.join(missing)} named in {chosen[0]}",
                "Download the model again (`python -m pipelines.download`)",
            )
        chosen = [chosen[0]] + shards
    return [path / name for name in chosen]


def require_tokenizer_library(spec: ModelSpec, path: Path) -> None:
    """A tokenizer shipped only as a SentencePiece model (``spiece.model``, no ``tokenizer.json``) is read by the
    sentencepiece package: name it before a library fails with an unrelated complaint (it falls back to tiktoken)."""
    if (path / "tokenizer.json").is_file():
        return
    models = sorted(p.name for p in path.glob("*.model"))
    if models and importlib.util.find_spec("sentencepiece") is None:
        raise ModelLoadError(
            spec.name,
            f"its tokenizer comes only as a SentencePiece model ({', '.join(models)}), "
            "which needs the sentencepiece package",
            "Install it with `pip install sentencepiece`",
        )


def read_weights(path: Path, *, model: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of one weights file: safetensors, or a PyTorch ``.bin`` through torch's restricted unpickler.

    A ``.bin`` that holds anything but tensors and plain containers (a custom class, a ``__reduce__`` payload) is
    refused with a ModelLoadError (naming ``model``, else the file) before any of its code can run.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    _require_safe_torch_load(model or str(path))
    import zipfile

    try:  # mmap: the tensors stay on disk until used (only torch's zip format can be mapped)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise refused_pickle(model or str(path), path, e) from e


def verify_pickle(spec: ModelSpec, path: Path) -> None:
    """A ModelLoadError unless ``path`` (a ``.bin``) unpickles to tensors alone under torch's restricted loader."""
    if Path(path).suffix == ".bin":
        read_weights(path, model=spec.name)


def refused_pickle(model: str, path: Path, error: Exception) -> ModelLoadError:
    """The refusal of a ``.bin`` that torch's restricted unpickler would not read (``error`` is its complaint)."""
    where = f"the weights file {path}" if Path(path).is_file() else f"a weights file in {path}"
    text = str(error)  # torch's complaint: keep what it found, not its advice to turn the check off
    detail = text.partition("WeightsUnpickler error:")[2].partition("Check the documentation")[0]
    detail = " ".join((detail.strip() or text.split("\n", 1)[0] or type(error).__name__).split())
    return ModelLoadError(
        model,
        f"{where} was refused unread: PyTorch .bin weights are read only through torch's restricted "
        f"unpickler, which rebuilds tensors and runs no code, and this file holds something else ({detail})",
        "Use a checkpoint with safetensors weights, or a .bin that holds only tensors",
    )


def _require_safe_torch_load(model: str) -> None:
    import torch

    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < SAFE_TORCH_LOAD:
        raise ModelLoadError(
            model,
            f"PyTorch {torch.__version__} cannot read .bin weights safely",
            "Install torch>=2.6, or use a checkpoint with safetensors weights",
        )


def _at(spec: ModelSpec) -> str:
    return f" at revision {spec.revision}" if spec.revision else ""


@contextlib.contextmanager
def translating_load_errors(spec: ModelSpec, path: Path | str) -> Iterator[None]:
    """Any failure while reading a checkpoint becomes one ModelLoadError naming the model, cause and fix."""
    try:
        yield
    except PipelineError:
        raise
    except pickle.UnpicklingError as e:  # a library's torch.load(weights_only=True) refused a .bin
        raise refused_pickle(spec.name, Path(path), e) from e
    except Exception as e:  # corrupt weights, wrong format, missing files: the libraries raise many kinds
        # The library's words (file names, errno, internals) go to the log, not into the message a visitor sees.
        log.warning("reading %r as a %s model failed: %s: %s", str(path), spec.task, type(e).__name__, e)
        raise ModelLoadError(
            spec.name,
            f"the checkpoint at {path} could not be read as a {spec.task} model (the server log has the details)",
            "Check that it is a complete checkpoint of a supported kind, or choose another model",
        ) from e


def config_model_type(spec: ModelSpec, path: Path) -> str:
    """The ``model_type`` in a transformers checkpoint's config.json (to pick a backend for 'auto')."""
    config = path / "config.json"
    with translating_load_errors(spec, path):
        return json.loads(config.read_text())["model_type"]
