"""The index job on Ray Data against the single-process indexer (same images, same model, same run), its scaling on
paper, and query latency over a catalogue of 1M vectors built by the job's index builder.

    python bench/bench_jobs.py                           # 1,000 JPEGs and a 1M-vector catalogue: ~15 min on 2 cores
    python bench/bench_jobs.py --images 200 --vectors 100000

Throughput: open_clip ViT-B-32 with random weights (the FLOPs are what count), written once to bench/cache as an
open_clip checkpoint directory, so both sides load it as users would, through ``pipelines.load("search", DIR)``. Both
embed the same 800x600 JPEG files (bench_search's), fp32, on this machine's CPUs:
- single process: ``Gallery.from_paths(files).prepare(space)``, what ``python -m pipelines.index DIR`` runs (hashing,
  JPEG decoding at reduced scale on a worker thread, the embedding cache write); the model is loaded before the clock.
- Ray job: ``run_job(JobSpec("index", LIST, OUT, shard_images=250))`` on a local Ray with this machine's CPUs: one
  actor of all the CPUs (what the layout picks here), reading, hashing, decoding and encoding as above, writing one
  Parquet shard per 250 images. Timed from the first shard started to the last written (the actor's model load
  excluded, as for the single process); the wall time with starting Ray and the actor is shown too.
Each runs ``--repeats`` times, in turns, and the best run of each counts. Goal: Ray job / single process >= 0.85.

Scaling on paper: from the measured rate of one actor and the shard layout, the time for 1M images on N nodes like
this one (every actor busy while shards remain; the driver only receives one summary row per shard).

Catalogue: N random unit vectors (512-d) written as the index job writes them (Parquet shards of 1,000 rows), built
with ``build_catalogue`` (the kind chosen by size: IVF at 1M) and searched through ``Catalogue.find`` (memory-mapped),
one top-10 query at a time; recall@10 against brute force over the same vectors. Goal: <= 50 ms at 1M.
Timings never belong in tests; this script is not run by CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_search import CACHE, cpu_seconds, jpeg_files, merge_top10  # noqa: E402
from bench.report import Row, ratio_row  # noqa: E402

MODEL_DIR = CACHE / "vit-b-32-random"  # an open_clip checkpoint directory: config, weights (seed 0)
SHARD_IMAGES = 250  # images per shard in the throughput run: 4 shards of the 1,000
CATALOGUE_SHARD = 1_000  # rows per shard of the synthetic catalogue, as the job's default
DIM = 512
QUERIES = 100
RECALL_QUERIES = 20
NODES = (1, 2, 4, 8, 16, 64)  # cluster sizes for the scaling on paper
PAPER_IMAGES = 1_000_000


def vit_b_32_dir() -> Path:
    """ViT-B-32 with random weights (seed 0) as an open_clip checkpoint directory, made once."""
    if (MODEL_DIR / "open_clip_model.safetensors").is_file():
        return MODEL_DIR
    import open_clip
    import torch
    from safetensors.torch import save_file

    config = json.loads((Path(open_clip.__file__).parent / "model_configs" / "ViT-B-32.json").read_text())
    preprocess = {
        "size": 224,
        "mean": list(open_clip.OPENAI_DATASET_MEAN),
        "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, MODEL_DIR / "open_clip_model.safetensors")
    (MODEL_DIR / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}))
    return MODEL_DIR


def single_process(paths: list[Path], model: str) -> float:
    """Images/s of the app's indexer (``python -m pipelines.index``'s path), model loaded before the clock."""
    import pipelines
    from pipelines.core import runtime
    from pipelines.search.gallery import Gallery

    space = pipelines.load("search", model).space
    with tempfile.TemporaryDirectory() as cache:
        runtime.configure(cache_dir=Path(cache))
        start = time.perf_counter()
        report = Gallery.from_paths("bench", paths).prepare(space)
        seconds = time.perf_counter() - start
    assert not report.problems, report
    return report.encoded / seconds  # a file whose content another already has is hashed, not encoded


def ray_job(paths: list[Path], model: str):
    """The index job's report over ``paths`` (a list file as SOURCE), on a local Ray with this machine's CPUs."""
    from pipelines.jobs import JobSpec, run_job

    with tempfile.TemporaryDirectory() as work:
        listed = Path(work) / "images.txt"
        listed.write_text("\n".join(map(str, paths)) + "\n")
        report = run_job(JobSpec("index", str(listed), Path(work) / "out", model=model, shard_images=SHARD_IMAGES))
    assert report.images == len(paths) and not report.failures, report
    return report


def paper_scaling(per_actor: float, actors_per_node: int, startup: float) -> list[tuple[int, int, int, float, float]]:
    """(nodes, actors, waves of shards, hours, speed-up over one node) for PAPER_IMAGES images in shards of 1,000."""
    shards = math.ceil(PAPER_IMAGES / CATALOGUE_SHARD)
    shard_seconds = CATALOGUE_SHARD / per_actor
    rows = []
    for nodes in NODES:
        actors = min(nodes * actors_per_node, shards)  # a shard is the unit of work: no more busy actors than shards
        waves = math.ceil(shards / actors)
        hours = (startup + waves * shard_seconds) / 3600
        rows.append((nodes, actors, waves, hours))
    return [(n, a, w, h, rows[0][3] / h) for n, a, w, h in rows]


def synthetic_shards(out: Path, count: int, model_key: str, queries: np.ndarray) -> np.ndarray:
    """``count`` random unit vectors as index-job shards in ``out``; returns the exact top-10 ids for ``queries``."""
    import pyarrow as pa

    from pipelines.jobs import shards

    out.mkdir(parents=True, exist_ok=True)
    best_scores = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 10), dtype=np.int64)
    rng = np.random.default_rng(1)
    for number, start in enumerate(range(0, count, CATALOGUE_SHARD)):
        rows = min(CATALOGUE_SHARD, count - start)
        vectors = rng.standard_normal((rows, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * DIM)
        table = pa.table(
            {
                "path": pa.array([f"/data/images/{start + i:07d}.jpg" for i in range(rows)]),
                "sha256": pa.array([f"{start + i:064x}" for i in range(rows)]),
                "embedding": pa.ListArray.from_arrays(offsets, pa.array(vectors.ravel())),
                "model": pa.array([model_key] * rows),
                "error": pa.nulls(rows, pa.string()),
            }
        )
        shards.write_table(out / f"index-{number:05d}-synthetic.parquet", table)
        best_scores, best_ids = merge_top10(best_scores, best_ids, queries @ vectors.T, start)
    return best_ids


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def catalogue_latency(count: int, model: str) -> dict:
    import pipelines
    from pipelines.jobs import Catalogue, build_catalogue
    from pipelines.search import vector_index

    space = pipelines.load("search", model).space
    rng = np.random.default_rng(2)
    recall_queries = rng.standard_normal((RECALL_QUERIES, DIM), dtype=np.float32)
    recall_queries /= np.linalg.norm(recall_queries, axis=1, keepdims=True)
    folder = Path(tempfile.mkdtemp(prefix="catalogue-", dir=CACHE))
    try:
        start = time.perf_counter()
        exact = synthetic_shards(folder, count, space.key, recall_queries)
        write_seconds = time.perf_counter() - start
        info = build_catalogue(folder, log=print)
        before = rss_mib()
        catalogue = Catalogue(folder)
        start = time.perf_counter()
        catalogue.find(space, recall_queries[:1], 10)  # opens the index and the id table (memory-mapped)
        open_ms = 1000 * (time.perf_counter() - start)
        opened = rss_mib() - before
        ids = []
        for query in recall_queries:
            [row] = catalogue.find(space, query[None], 10).rows
            ids.append([int(item.digest, 16) for item, _ in row])
        queries = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        times = []
        for query in queries:
            start = time.perf_counter()
            catalogue.find(space, query[None], 10)
            times.append(time.perf_counter() - start)
        text_times = []
        for i in range(20):
            start = time.perf_counter()
            catalogue.find(space, space.embed_texts([f"a photo of a cat number {i}"]), 10)
            text_times.append(time.perf_counter() - start)
        index_bytes = sum(f.stat().st_size for f in (folder / "index").iterdir())
        return {
            "kind": info.kind,
            "write s": write_seconds,
            "build s": info.seconds,
            "open ms": open_ms,
            "rss MiB": opened,
            "index MiB": index_bytes / 2**20,
            "ms": 1000 * statistics.median(times),
            "p95 ms": 1000 * float(np.percentile(times, 95)),
            "ms with text": 1000 * statistics.median(text_times),
            "recall@10": vector_index.recall_at(10, np.array(ids), exact),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000)
    parser.add_argument("--vectors", type=int, default=1_000_000, help="catalogue size (0: no catalogue)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each contender, in turns")
    args = parser.parse_args(argv)

    import faiss

    from pipelines.core import runtime

    runtime.configure(profile="toy", device="cpu")  # the model is given by directory; nothing else loads
    model = str(vit_b_32_dir())
    paths = jpeg_files(args.images)
    threads = os.cpu_count()
    faiss.omp_set_num_threads(threads)
    rows: list[Row] = []
    if args.images:
        (every_start, own_start), wall_start = cpu_seconds(), time.perf_counter()
        singles, jobs = [], []
        for _ in range(args.repeats):  # in turns, the best of each: the machine may be shared
            singles.append(single_process(paths, model))
            jobs.append(ray_job(paths, model))
        single, job = max(singles), max(jobs, key=lambda report: report.images_per_second)
        (every_end, own_end), wall = cpu_seconds(), time.perf_counter() - wall_start
        others = max(0.0, (every_end - every_start) - (own_end - own_start)) / wall
        print(f"\nIndexing {len(paths):,} JPEG files (800x600) with ViT-B-32 (random weights), fp32, {threads} CPUs")
        print(f"CPU used meanwhile by other processes (Ray's workers among them): {others:.2f} cores")
        print(f"| {'contender':<44} | {'images/s':>8} |")
        print(f"|{'-' * 46}|{'-' * 10}|")
        print(f"| {'single process (Gallery.prepare)':<44} | {single:8.2f} |")
        print(f"| {'Ray job, ' + job.layout:<44} | {job.images_per_second:8.2f} |")
        with_start = job.images / job.wall_seconds
        print(f"| {'Ray job, with starting Ray and the actor':<44} | {with_start:8.2f} |")
        print(f"runs in turns (images/s): single {[round(r, 2) for r in singles]}, ", end="")
        print(f"Ray {[round(r.images_per_second, 2) for r in jobs]}")
        print(f"Ray job / single process: {job.images_per_second / single:.2f}x (goal >= 0.85)")
        rows += [
            ratio_row(
                f"jobs: index job throughput on a local Ray / single-process indexer ({len(paths):,} JPEGs, ViT-B-32)",
                job.images_per_second,
                single,
                "images/s",
                0.85,
                note=job.layout,
            ),
            ratio_row(
                "jobs: the same, with starting Ray and the actor (model load) counted",
                with_start,
                single,
                "images/s",
                None,
            ),
        ]
        startup = job.wall_seconds - job.seconds
        print(
            f"\nOn paper: {PAPER_IMAGES:,} images in shards of {CATALOGUE_SHARD:,} on N nodes like this one "
            f"(1 actor of {threads} CPUs each at {job.images_per_second:.1f} images/s; start-up {startup:.0f} s)"
        )
        print(f"| {'nodes':>5} | {'actors':>6} | {'waves':>5} | {'hours':>7} | {'speed-up':>8} |")
        print(f"|{'-' * 7}|{'-' * 8}|{'-' * 7}|{'-' * 9}|{'-' * 10}|")
        for nodes, actors, waves, hours, speedup in paper_scaling(job.images_per_second, 1, startup):
            print(f"| {nodes:>5} | {actors:>6} | {waves:>5} | {hours:7.2f} | {speedup:7.1f}x |")
    if args.vectors:
        row = catalogue_latency(args.vectors, model)
        print(f"\nCatalogue of {args.vectors:,} random unit vectors ({DIM}-d) from Parquet shards, top-10, one query")
        print(json.dumps(row, indent=1))
        rows += [
            Row(
                f"jobs: top-10 query latency over a {args.vectors:,}-vector catalogue (memory-mapped), text excluded",
                row["ms"],
                None,
                "ms",
                50.0,
                higher_is_better=False,
                note=f"{row['kind']}, recall@10 {row['recall@10']:.3f}",
            ),
            Row(
                f"jobs: top-10 query latency over a {args.vectors:,}-vector catalogue, text encoder included",
                row["ms with text"],
                None,
                "ms",
                None,
                higher_is_better=False,
            ),
        ]
    return rows


if __name__ == "__main__":
    for result in main():
        print(result)
