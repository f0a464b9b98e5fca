"""Prefetch a profile's hub checkpoints, for offline machines and Spaces builds.

    python -m pipelines.download                       # the default profile, into the Hugging Face cache
    python -m pipelines.download --models-dir models   # into ./models; then: python app.py --models-dir models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import pipeline_class, registry, runtime
from .checkpoints import checkpoint_dir
from .errors import PipelineError


def fetch(task: str, model: str | None = None) -> Path:
    """Download (or find in the cache) the files ``task``'s model needs; returns its local directory."""
    spec = registry.resolve(task, model, runtime.settings().profile)
    return checkpoint_dir(spec, pipeline_class(spec).hub_files)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Download the models a profile uses.")
    parser.add_argument("--profile", choices=registry.PROFILES, default="default")
    parser.add_argument("--models-dir", type=Path, default=None, help="cache directory (default: Hugging Face's)")
    parser.add_argument("--tasks", nargs="*", default=list(registry.tasks()), choices=registry.tasks())
    args = parser.parse_args(argv)
    runtime.configure(profile=args.profile, models_dir=args.models_dir)
    failed = 0
    for task in args.tasks:
        try:
            print(f"{task}: {fetch(task)}")
        except PipelineError as error:
            failed += 1
            print(f"{task}: FAILED: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
