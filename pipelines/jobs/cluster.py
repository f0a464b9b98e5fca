"""Where a job runs: the Ray cluster RAY_ADDRESS names (or the one `ray job submit` started the job in), else a
local Ray started on this machine. Ray is imported here only, when a job starts: the app never needs it."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import InputError
from ..core.registry import PROJECT_ROOT

MAX_CPUS_PER_ACTOR = 4.0  # torch threads per CPU actor: past ~4 an encoder scales worse than another actor does
LOCAL_OBJECT_STORE_BYTES = 1 << 30  # a local Ray's shared memory: shard descriptors and summaries, never images
# What a cluster's workers get of this checkout when a job is started from a shell with RAY_ADDRESS (ray job submit
# uploads its --working-dir itself): the code and the toy models; never environments, history or outputs.
UPLOAD_EXCLUDES = [".git", ".venv", "**/__pycache__", "tests", "bench", "docs", "*.parquet", "*.faiss"]
SUBMITTED_JOB = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by `ray job submit` in the driver's environment


def ray_module():
    """The ray package, or an error that names the pip command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise InputError(
            "Batch jobs run on Ray Data, which is not installed here. Install it with "
            "`pip install -r requirements.txt` (or `pip install 'ray[data]'`)"
        ) from error
    return ray


def connect(cpus: int | None = None, *, out: Path | None = None):
    """Ray, connected: to the running instance, to the cluster at RAY_ADDRESS, or to a new local one with
    ``cpus`` CPUs (default: this machine's). A job's output folder ``out`` is left out of the code a cluster's
    workers get, when it lies in this checkout."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    if os.environ.get(SUBMITTED_JOB):  # inside `ray job submit`: the job's runtime env already holds the code
        ray.init(log_to_driver=True)
    elif os.environ.get("RAY_ADDRESS"):
        runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": upload_excludes(out)}
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env)
    else:
        python_path = os.environ.get("PYTHONPATH", "")
        ray.init(
            num_cpus=cpus or os.cpu_count(),
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            include_dashboard=False,
            # The workers import this checkout, as the driver does (not JobConfig's code_search_path: a job started
            # that way loads classes only locally, and a later driver's Ray Data cannot use its detached actors)
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), python_path]))}},
        )
    return ray


def upload_excludes(out: Path | None = None) -> list[str]:
    """UPLOAD_EXCLUDES, plus ``out`` (as a pattern anchored at the checkout's root) when it lies inside the checkout:
    a job's earlier shards are outputs, never code to upload."""
    if out is None:
        return list(UPLOAD_EXCLUDES)
    root, out = PROJECT_ROOT.resolve(), Path(out).expanduser().resolve()  # as Ray walks the working_dir
    if out == root or not out.is_relative_to(root):
        return list(UPLOAD_EXCLUDES)
    return [*UPLOAD_EXCLUDES, "/" + out.relative_to(root).as_posix()]


def layout(ray, actors: int | None, cpus_per_actor: float | None, gpus: bool | None) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor) for the cluster Ray sees: one actor per GPU where there are GPUs,
    with the CPUs shared out among them, else CPU actors of up to MAX_CPUS_PER_ACTOR CPUs each, as many as the CPUs
    allow."""
    resources = ray.cluster_resources()
    total_cpus, total_gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    use_gpus = total_gpus > 0 if gpus is None else gpus
    if use_gpus:
        if not total_gpus:
            raise InputError("--gpus was given, but the Ray cluster has no GPU. Leave it out to run on CPUs")
        per_actor = cpus_per_actor or max(1.0, total_cpus // total_gpus)  # a GPU actor's CPUs decode its images
        return actors or total_gpus, per_actor, 1.0
    per_actor = cpus_per_actor or min(MAX_CPUS_PER_ACTOR, total_cpus)
    return actors or max(1, int(total_cpus // per_actor)), per_actor, 0.0
