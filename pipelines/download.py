"""Prefetch a profile's hub checkpoints, for offline machines and Spaces builds.

    python -m pipelines.download                       # the default profile, into the Hugging Face cache
    python -m pipelines.download --models-dir models   # into ./models; then: python app.py --models-dir models
    python -m pipelines.download --preload-lines       # README's `preload_from_hub` lines, from the Hub's listings

It fetches exactly what the loaders read (core/checkpoints.py's policy: the files beside the weights and the one weight
format chosen) and exits non-zero, naming the model, when a model's weights did not arrive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import pipeline_class
from .core import registry, runtime
from .core.checkpoints import checkpoint_dir, hub_files, weights_files
from .core.errors import ModelLoadError, PipelineError
from .core.registry import ModelSpec


def fetch(task: str, model: str | None = None) -> Path:
    """Download (or find in the cache) the files ``task``'s model needs; returns its local directory.

    Raises ModelLoadError when the model's weights are not there afterwards (a repo without them, or offline).
    """
    spec = registry.resolve(task, model, runtime.settings().profile)
    layout = pipeline_class(spec).hub_files
    path = checkpoint_dir(spec, layout)
    weights_files(spec, path, layout)
    return path


def preload_line(spec: ModelSpec) -> str:
    """``spec``'s entry in a Space's ``preload_from_hub``: 'repo file1,file2[ revision]' (the Hub is listed)."""
    files = hub_files(spec, pipeline_class(spec).hub_files)
    if files is None:
        raise ModelLoadError(
            spec.name, "the Hugging Face Hub cannot be reached to list its files", "Run this on a machine with network"
        )
    return " ".join([spec.source, ",".join(files)] + ([spec.revision] if spec.revision else []))


def preload_lines(profile: str = "default") -> list[str]:
    """``preload_from_hub`` entries for ``profile``'s hub models, one per task, in task order."""
    specs = [registry.resolve(task, None, profile) for task in registry.tasks()]
    return [preload_line(spec) for spec in specs if spec.is_hub]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Download the models a profile uses.")
    parser.add_argument("--profile", choices=registry.PROFILES, default="default")
    parser.add_argument("--models-dir", type=Path, default=None, help="cache directory (default: Hugging Face's)")
    parser.add_argument("--tasks", nargs="*", default=list(registry.tasks()), choices=registry.tasks())
    parser.add_argument(
        "--preload-lines",
        action="store_true",
        help="print the `preload_from_hub` lines for README's front matter instead of downloading",
    )
    args = parser.parse_args(argv)
    runtime.configure(profile=args.profile, models_dir=args.models_dir)
    if args.preload_lines:
        try:
            print("\n".join(f"  - {line}" for line in preload_lines(args.profile)))
        except PipelineError as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        return 0
    failed = []
    for task in args.tasks:
        try:
            print(f"{task}: {fetch(task)}")
        except PipelineError as error:
            failed.append(task)
            print(f"{task}: FAILED: {error}", file=sys.stderr)
    if failed:
        print(f"Not downloaded: {', '.join(failed)}. The app cannot run these models offline.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
