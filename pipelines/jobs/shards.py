"""A job's output folder: Parquet shards of a fixed number of images each, named by their content, plus a manifest.

A shard is written whole (to a temporary name, then renamed), so a file under its final name is finished: a re-run
after a crash or a killed worker plans the same shards from the same source and skips those already there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ..core.errors import InputError

SHARD_IMAGES = 1_000  # images per shard: the unit of work, of progress and of resumption
MANIFEST = "_job.json"  # what the folder holds: task, model, shard size, the shards of the last plan
SUFFIX = ".parquet"


@dataclass(frozen=True)
class Shard:
    name: str  # file name in OUT: task, position, hash of its paths
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    task: str  # index or caption
    model: str  # the model's source (registry name resolved), as the shards' rows were made with
    shard_images: int
    shards: tuple[str, ...] = ()  # the last plan's shard names, in order (stale shards of older plans are ignored)


def plan(task: str, paths: Sequence[str], shard_images: int = SHARD_IMAGES) -> list[Shard]:
    """``paths`` in shards of ``shard_images``; a shard's name changes whenever its paths do."""
    if shard_images < 1:
        raise InputError(f"A shard must hold at least one image; got {shard_images}")
    shards = []
    for number, start in enumerate(range(0, len(paths), shard_images)):
        chunk = tuple(paths[start : start + shard_images])
        key = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:12]
        shards.append(Shard(f"{task}-{number:05d}-{key}{SUFFIX}", chunk))
    return shards


def finished(out: Path, shards: Sequence[Shard]) -> set[str]:
    """The names of the shards already written to ``out``."""
    return {shard.name for shard in shards if (out / shard.name).is_file()}


def read_manifest(out: Path) -> Manifest | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return Manifest(data["task"], data["model"], int(data["shard_images"]), tuple(data.get("shards", ())))


def start(out: Path, manifest: Manifest) -> None:
    """Records what ``out`` is for; refuses an ``out`` that holds another task's or model's shards."""
    out.mkdir(parents=True, exist_ok=True)
    before = read_manifest(out)
    if before is not None and (before.task, before.model) != (manifest.task, manifest.model):
        raise InputError(
            f"'{out}' holds {before.task} shards made with {before.model}, not {manifest.task} with "
            f"{manifest.model}. Give another output folder, or the same task and model to resume"
        )
    if before is not None and before.shard_images != manifest.shard_images:
        raise InputError(
            f"'{out}' holds shards of {before.shard_images} images; this run asks for {manifest.shard_images}. "
            f"Resume with --shard-images {before.shard_images}, or give another output folder"
        )
    write_atomically(out / MANIFEST, json.dumps(asdict(manifest), indent=1).encode())


def shard_files(out: Path) -> list[Path]:
    """The finished shards of the last plan, in order (every .parquet file if there is no manifest)."""
    out = Path(out)
    manifest = read_manifest(out)
    if manifest is not None and manifest.shards:
        return [out / name for name in manifest.shards if (out / name).is_file()]
    return sorted(out.glob(f"*{SUFFIX}"))


def write_table(path: Path, table) -> None:
    """One Parquet file, complete or not at all."""
    import pyarrow.parquet as pq

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
