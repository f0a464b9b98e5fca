"""The driver of a job: list SOURCE, plan shards, skip those OUT already holds, run the rest on a Ray Data actor pool,
print progress and a summary."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core import registry, runtime
from . import cluster, shards
from .sources import list_images
from .workers import CaptionWorker, IndexWorker

WORKERS = {"index": IndexWorker, "caption": CaptionWorker}
PIPELINE_TASKS = {"index": "search", "caption": "caption"}  # the app's pipeline each job runs
SHOWN_FAILURES = 5  # failures the summary names; the rest are counted (all are in the shards' error column)


@dataclass(frozen=True)
class JobSpec:
    """What to run and how to lay it out; zeros and Nones: chosen from the cluster."""

    task: str  # index or caption
    source: str  # folder, list file (text or Parquet) or glob
    out: Path  # folder of Parquet shards
    model: str | None = None  # registry name, hub id or local directory (default: the profile's)
    shard_images: int = shards.SHARD_IMAGES
    actors: int | None = None  # actor pool size (default: one per GPU, else CPUs / cpus_per_actor)
    cpus_per_actor: float | None = None  # torch threads per actor (default: up to 4)
    gpus: bool | None = None  # one GPU per actor (default: when the cluster has GPUs)
    batch_size: int = 0  # images per forward pass (default: by device, workers.BATCH_SIZES)
    decode_threads: int | None = None  # index job: threads decoding images (default: the actor's CPUs on a GPU)


@dataclass
class JobReport:
    task: str
    shards: int = 0  # in the plan
    skipped: int = 0  # already in OUT: not run again
    images: int = 0  # processed by this run
    failures: int = 0  # rows with an error, of this run
    seconds: float = 0.0  # wall time of the run, from the first shard started to the last written
    wall_seconds: float = 0.0  # the same, with connecting to Ray and starting the actors (loading their models)
    layout: str = ""
    problems: list[str] = field(default_factory=list)  # "path: reason", the first SHOWN_FAILURES

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        if self.skipped == self.shards:
            return f"{self.task}: nothing to do: all {_count(self.shards, 'shard')} are already written"
        text = (
            f"{self.task}: {self.images:,} images in {_count(self.shards - self.skipped, 'shard')} in "
            f"{self.seconds:.1f} s "
            f"({self.images_per_second:.1f} images/s; {self.layout}); {self.failures:,} failed"
        )
        if self.skipped:
            text += f"; {self.skipped} of {self.shards} shards were already done and were skipped"
        if self.problems:
            more = self.failures - len(self.problems)
            text += "\n  " + "\n  ".join(self.problems) + (f"\n  ... and {more:,} more" if more > 0 else "")
        return text


def run_job(spec: JobSpec, *, log: Callable[[str], None] | None = None) -> JobReport:
    """Runs ``spec`` on Ray (connecting as ``cluster.connect`` does) and returns what it did."""
    log = log or _stderr
    if spec.task not in WORKERS:
        raise ValueError(f"unknown job {spec.task!r}; expected one of {', '.join(WORKERS)}")
    out = Path(spec.out).expanduser().absolute()  # the actors write here, from a cluster's own working folder
    paths = list_images(spec.source)
    settings = runtime.settings()
    model = registry.resolve(PIPELINE_TASKS[spec.task], spec.model, settings.profile, public=settings.public)
    plan = shards.plan(spec.task, paths, spec.shard_images)
    shards.start(out, shards.Manifest(spec.task, model.source, spec.shard_images, tuple(s.name for s in plan)))
    done = shards.finished(out, plan)
    pending = [shard for shard in plan if shard.name not in done]
    report = JobReport(spec.task, shards=len(plan), skipped=len(done))
    planned = _count(len(plan), "shard")
    log(f"{spec.task}: {len(paths):,} images in {planned}: {len(done)} already in {out}, {len(pending)} to run")
    if not pending:
        return report
    connecting = time.perf_counter()
    ray = cluster.connect(out=out)
    actors, cpus, gpus = cluster.layout(ray, spec.actors, spec.cpus_per_actor, spec.gpus)
    actors = min(actors, len(pending))
    report.layout = f"{_count(actors, 'actor')} of {cpus:g} CPU{'s' * (cpus != 1)}" + (
        f" and {gpus:g} GPU" if gpus else ""
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # one line per shard below instead of Ray's bars
    rows = [{"shard": shard.name, "paths": list(shard.paths)} for shard in pending]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        WORKERS[spec.task],
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        num_gpus=gpus,
        fn_constructor_kwargs=dict(
            settings=settings,
            model=spec.model,
            out=str(out),
            batch_size=spec.batch_size,
            threads=int(cpus),
            decode_threads=spec.decode_threads,
        ),
    )
    first = None
    for count, row in enumerate(dataset.iter_rows(), 1):
        first = first or time.perf_counter() - row["seconds"]  # from when the first shard started, not the actors
        report.images += int(row["images"])
        report.failures += int(row["failures"])
        report.seconds = time.perf_counter() - first
        log(
            f"  {count}/{len(pending)} shards written ({row['shard']}: {row['images']} images, "
            f"{row['failures']} failed); {report.images_per_second:.1f} images/s"
        )
    report.wall_seconds = time.perf_counter() - connecting
    log(f"  ({report.wall_seconds:.1f} s with connecting to Ray and starting {report.layout})")
    report.problems = _problems(out, [shard.name for shard in pending])
    return report


def _problems(out: Path, names: list[str]) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    problems = []
    for name in names:
        table = pq.read_table(out / name, columns=["path", "error"])
        failed = table.filter(pc.is_valid(table.column("error")))
        problems += [f"{row['path']}: {row['error']}" for row in failed.to_pylist()]
        if len(problems) >= SHOWN_FAILURES:
            break
    return problems[:SHOWN_FAILURES]


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'s' * (number != 1)}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
