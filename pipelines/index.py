"""Index a folder of images for search, offline: the embeddings go into the app's on-disk cache (and a FAISS
index is saved for a large folder), so the app and later runs search them without encoding again.

    python -m pipelines.index DIR                      # embed every image under DIR into the on-disk cache
    python -m pipelines.index DIR --query "a red circle" --model toy-clip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import load
from .core import runtime
from .core.errors import PipelineError
from .search.gallery import Gallery


def _print_progress(done: int, total: int, what: str) -> None:
    print(f"\r{what}: {done}/{total}", end="\n" if done >= total else "", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.index",
        description="Embed every image under a folder into the app's on-disk cache "
        "(and save a FAISS index for large folders), so the app and later "
        "runs search them without encoding again.",
    )
    parser.add_argument("folder", type=Path, help="folder of images (searched recursively)")
    parser.add_argument(
        "--model", default=None, help="search model: registry name, hub id or local directory (default: the profile's)"
    )
    parser.add_argument("--profile", choices=("default", "toy"), default=None, help="model profile (env MM_PROFILE)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="the app's cache directory (env MM_CACHE_DIR)")
    parser.add_argument("--query", default=None, help="search the folder for this text afterwards")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    runtime.configure(profile=args.profile, cache_dir=args.cache_dir)
    try:
        searcher = load("search", args.model)
        gallery = Gallery.from_folder(args.folder, progress=_print_progress)
        report = gallery.prepare(searcher.space, progress=_print_progress)
        print(
            f"{len(gallery)} images indexed with {searcher.spec.name} ({report.index_kind} index, "
            f"{report.encoded} encoded, {report.cached} from the cache) in {runtime.settings().cache_dir}"
        )
        for problem in report.problems:
            print(f"skipped: {problem}")
        if args.query:
            [result] = searcher([args.query], top_k=args.top_k, gallery=gallery)
            for hit in result.hits:
                print(f"{hit.score:.3f}  {hit.path}")
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
