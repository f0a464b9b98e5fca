"""The actors of a job: each loads its model once (the same pipeline classes as the app), then turns whole shards
into Parquet files. Ray Data's ``map_batches`` hands them one shard descriptor at a time; they return one summary
row per shard, so the driver can report progress without the results passing through it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core import runtime
from ..core.errors import PipelineError
from ..search.uploads import digest
from . import shards
from .sources import Unreadable, is_local, read_bytes

# Images per forward pass, per device: what a CPU and what a GPU encode well at once (--batch-size overrides).
BATCH_SIZES = {"index": {"cpu": 32, "cuda": 256}, "caption": {"cpu": 16, "cuda": 64}}


class ShardWorker:
    """One model, loaded in the actor's constructor; ``__call__`` writes the shards it is given."""

    task = ""

    def __init__(
        self,
        settings: runtime.Settings,
        model: str | None,
        out: str,
        batch_size: int,
        threads: int,
        decode_threads: int | None = None,
    ):
        import torch

        if threads:  # Ray sets OMP_NUM_THREADS from the actor's CPUs; torch is told the same explicitly
            torch.set_num_threads(threads)
        runtime.configure(**vars(settings))
        self.out = Path(out)
        self.device = runtime.resolve_device()
        self.batch_size = batch_size or BATCH_SIZES[self.task][self.device.type]
        # On a GPU the encoder leaves the actor's CPUs idle: they decode in parallel (None: that many threads). On a
        # CPU they run the encoder, and one low-priority thread decodes in its gaps (encode_images): 0.
        if decode_threads is None:
            decode_threads = max(1, threads) if self.device.type == "cuda" else 0
        self.decode_threads = decode_threads
        self.load(model)

    def load(self, model: str | None) -> None:
        raise NotImplementedError

    def __call__(self, batch: dict) -> dict:
        summaries: dict[str, list] = {"shard": [], "images": [], "failures": [], "seconds": []}
        for name, paths in zip(batch["shard"], batch["paths"]):
            started = time.perf_counter()
            table = self.shard_table([str(p) for p in paths])
            shards.write_table(self.out / str(name), table)
            summaries["shard"].append(str(name))
            summaries["images"].append(table.num_rows)
            summaries["failures"].append(table.num_rows - table.column("error").null_count)
            summaries["seconds"].append(time.perf_counter() - started)
        return summaries

    def shard_table(self, paths: list[str]):
        """The shard's rows: one per path, in order, with an error for the images that could not be used."""
        raise NotImplementedError


def read_all(paths: list[str]) -> tuple[dict[int, str], dict[int, object], dict[int, str]]:
    """({position: SHA-256}, {position: what to decode}, {position: reason}) for ``paths``: what to decode is the
    path of a local file (read again when decoded: a shard's images are never all in memory), the bytes of a
    remote one; the reason, for an image that could not be read."""
    digests, sources, errors = {}, {}, {}
    for i, path in enumerate(paths):
        try:
            data = read_bytes(path)
        except Unreadable as error:
            errors[i] = str(error)
            continue
        digests[i], sources[i] = digest(data), path if is_local(path) else data
    return digests, sources, errors


class IndexWorker(ShardWorker):
    """CLIP image embeddings, decoded and preprocessed as ``pipelines.index`` does (``encode_images``)."""

    task = "index"

    def load(self, model: str | None) -> None:
        import pipelines

        self.space = pipelines.load("search", model).space

    def encode_decoding_in_parallel(self, sources: list) -> tuple[np.ndarray, dict[int, str]]:
        """As ``encode_images`` (the same decoding and preprocessing, the same results), with ``decode_threads``
        threads decoding the next batches while the model encodes this one."""
        from concurrent.futures import ThreadPoolExecutor

        from ..search.encoding import DECODE_AHEAD, decode_pixels, input_size

        size, failures, rows = input_size(self.space), {}, []

        def decode(position: int):
            try:
                return decode_pixels(self.space, sources[position], size)
            except PipelineError as error:
                return error

        batches = [range(i, min(i + self.batch_size, len(sources))) for i in range(0, len(sources), self.batch_size)]
        with ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode") as pool:
            pending = [[(p, pool.submit(decode, p)) for p in batch] for batch in batches[:DECODE_AHEAD]]
            for number in range(len(batches)):
                decoded = [(p, job.result()) for p, job in pending.pop(0)]
                if number + DECODE_AHEAD < len(batches):  # at most DECODE_AHEAD batches of pixels in memory
                    pending.append([(p, pool.submit(decode, p)) for p in batches[number + DECODE_AHEAD]])
                failures.update((p, str(pixels)) for p, pixels in decoded if isinstance(pixels, Exception))
                good = [(p, pixels) for p, pixels in decoded if not isinstance(pixels, Exception)]
                if good:
                    rows.extend(self.space.embed_pixels([pixels for _, pixels in good]))
        return (np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)), failures

    def shard_table(self, paths: list[str]):
        import pyarrow as pa

        from ..search.encoding import encode_images

        digests, sources, errors = read_all(paths)
        good = sorted(sources)
        # Local files are decoded from their paths, as the single-process indexer does (JPEGs at reduced scale)
        if self.decode_threads:
            vectors, failures = self.encode_decoding_in_parallel([sources[i] for i in good])
        else:
            vectors, failures, _ = encode_images(self.space, [sources[i] for i in good], batch_size=self.batch_size)
        errors.update((good[j], message) for j, message in failures.items())
        encoded = iter(vectors)
        embeddings = [None if i in errors else next(encoded) for i in range(len(paths))]
        dim = vectors.shape[1] if len(vectors) else 0
        flat = np.concatenate([e for e in embeddings if e is not None]) if dim else np.zeros(0, np.float32)
        offsets = np.cumsum([0] + [0 if e is None else dim for e in embeddings]).astype(np.int32)
        mask = pa.array([e is None for e in embeddings])
        column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()), mask=mask)
        return pa.table(
            {
                "path": pa.array(paths, pa.string()),
                "sha256": pa.array([digests.get(i) for i in range(len(paths))], pa.string()),
                "embedding": column,
                "model": pa.array([self.space.key] * len(paths), pa.string()),
                "error": pa.array([errors.get(i) for i in range(len(paths))], pa.string()),
            }
        )


class CaptionWorker(ShardWorker):
    """Captions from the caption pipeline, with its registry defaults (as ``pipelines.load("caption")`` gives)."""

    task = "caption"

    def load(self, model: str | None) -> None:
        import pipelines

        self.captioner = pipelines.load("caption", model)
        self.captioner.batch_size = self.batch_size  # this actor's own pipeline: its forward passes, its device
        self.options = self.captioner.options()

    def caption(self, images: dict, errors: dict[int, str]) -> dict:
        """{position: Caption}; if a batch fails as a whole, its images are captioned one by one, so only the
        image at fault gets an error."""
        if not images:
            return {}
        try:
            return dict(zip(images, self.captioner.run(list(images.values()), self.options)))
        except PipelineError:
            captions = {}
            for i, image in images.items():
                try:
                    [captions[i]] = self.captioner.run([image], self.options)
                except PipelineError as error:
                    errors[i] = str(error)
            return captions

    def shard_table(self, paths: list[str]):
        import pyarrow as pa

        from ..core.io import load_image

        digests, sources, errors = read_all(paths)
        captions, good = {}, sorted(sources)
        for start in range(0, len(good), self.batch_size):  # decoded a batch at a time
            images = {}
            for i in good[start : start + self.batch_size]:
                try:
                    images[i] = load_image(sources[i])
                except PipelineError as error:
                    errors[i] = str(error)
            captions.update(self.caption(images, errors))
        return pa.table(
            {
                "path": pa.array(paths, pa.string()),
                "sha256": pa.array([digests.get(i) for i in range(len(paths))], pa.string()),
                "caption": pa.array([captions[i].text if i in captions else None for i in range(len(paths))]),
                "score": pa.array(
                    [captions[i].score if i in captions else None for i in range(len(paths))], pa.float32()
                ),
                "model": pa.array([self.captioner.spec.source] * len(paths), pa.string()),
                "error": pa.array([errors.get(i) for i in range(len(paths))], pa.string()),
            }
        )
