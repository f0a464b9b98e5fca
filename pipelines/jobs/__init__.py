"""Batch jobs past one machine: index or caption millions of images on Ray Data, writing Parquet shards, and build a
searchable catalogue from the shards.

    python -m pipelines.jobs index SOURCE OUT      # CLIP embeddings -> OUT/*.parquet, then OUT/index (the catalogue)
    python -m pipelines.jobs caption SOURCE OUT    # captions -> OUT/*.parquet
    python -m pipelines.jobs build OUT             # (re)build OUT/index from the shards
    python app.py --catalogue OUT                  # search the catalogue in the Search tab

Modules: ``sources`` (what SOURCE names; reading an image's bytes), ``shards`` (the output folder: shards, manifest,
resumption), ``workers`` (the Ray actors: one model each, one shard per call), ``cluster`` (connecting to Ray: local
by default, RAY_ADDRESS when set; the actor layout), ``run`` (the driver), ``catalogue`` (the index built from the
shards, opened as a read-only gallery). Ray is imported only when a job runs: the app and ``pipelines.index`` never
need it.
"""

from .catalogue import Catalogue, build_catalogue
from .run import JobReport, JobSpec, run_job

__all__ = ["Catalogue", "JobReport", "JobSpec", "build_catalogue", "run_job"]
