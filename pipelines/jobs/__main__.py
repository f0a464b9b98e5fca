"""python -m pipelines.jobs {index,caption,build}: see pipelines/jobs/__init__.py and the README."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core import runtime
from ..core.errors import PipelineError
from . import shards
from .catalogue import INDEX_FOLDER, build_catalogue, is_current
from .run import JobSpec, run_job


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.jobs",
        description="Index or caption many images on Ray Data (a local Ray by default; the cluster at RAY_ADDRESS "
        "when set), writing Parquet shards; re-running skips the shards already written.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in [("index", "CLIP image embeddings"), ("caption", "captions")]:
        job = commands.add_parser(name, help=f"{what} of every image SOURCE names, into Parquet shards in OUT")
        job.add_argument("source", help="a folder of images, a text or Parquet file of paths/URLs, or a glob")
        job.add_argument("out", type=Path, help="folder of Parquet shards (made if missing; resumed if not empty)")
        job.add_argument("--model", default=None, help="registry name, hub id or local directory (default: profile's)")
        job.add_argument("--profile", choices=("default", "toy"), default=None, help="model profile (env MM_PROFILE)")
        job.add_argument("--models-dir", type=Path, default=None, help="where hub models are (env MM_MODELS_DIR)")
        job.add_argument("--shard-images", type=int, default=shards.SHARD_IMAGES, help="images per shard")
        job.add_argument("--actors", type=int, default=None, help="actors, one model each (default: from the cluster)")
        job.add_argument("--cpus-per-actor", type=float, default=None, help="CPUs (torch threads) per actor")
        job.add_argument(
            "--gpus", action=argparse.BooleanOptionalAction, default=None, help="one GPU per actor (default: if any)"
        )
        job.add_argument("--batch-size", type=int, default=0, help="images per forward pass (default: by device)")
        if name == "index":
            job.add_argument(
                "--decode-threads",
                type=int,
                default=None,
                help="threads decoding images in each actor (default: its CPUs on a GPU; on a CPU one low-priority "
                "thread in the encoder's gaps: 0)",
            )
            job.add_argument(
                "--no-build", dest="build", action="store_false", help="write the shards only (build later)"
            )
    build = commands.add_parser("build", help="build OUT/index (the catalogue) from an index job's shards in OUT")
    build.add_argument("out", type=Path)
    build.add_argument("--kind", choices=("auto", "exact", "hnsw", "ivf"), default="auto")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "build":
            build_catalogue(args.out, kind=args.kind, log=_log)
            return 0
        runtime.configure(profile=args.profile, models_dir=args.models_dir)
        spec = JobSpec(
            task=args.command,
            source=args.source,
            out=args.out,
            model=args.model,
            shard_images=args.shard_images,
            actors=args.actors,
            cpus_per_actor=args.cpus_per_actor,
            gpus=args.gpus,
            batch_size=args.batch_size,
            decode_threads=getattr(args, "decode_threads", None),
        )
        report = run_job(spec, log=_log)
        print(report.summary())
        if args.command == "index" and args.build and is_current(args.out):
            print(f"catalogue: up to date in {args.out / INDEX_FOLDER}")
        elif args.command == "index" and args.build:
            info = build_catalogue(args.out, log=_log)
            print(f"catalogue: {info.count:,} images, {info.kind} index, in {args.out / INDEX_FOLDER}")
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
