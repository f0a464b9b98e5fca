"""Batch jobs on a local Ray (2 CPUs): the index and caption jobs give what the single-process pipelines give, bad
files become error rows, a killed job resumes without redoing its shards, and the catalogue built from the shards
answers the app's search API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from gradio_client import Client, handle_file

import pipelines
import toyworld
from pipelines.jobs import JobSpec, build_catalogue, run_job, shards
from pipelines.jobs.catalogue import Catalogue
from pipelines.search.embedding_cache import EmbeddingCache
from pipelines.search.gallery import Gallery
from pipelines.search.retrieval import Query
from pipelines.search.uploads import EMBEDDINGS_FILE, digest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEEDS = range(toyworld.HELD_OUT_SEED + 9000, toyworld.HELD_OUT_SEED + 9300)  # 300 scenes no toy model saw
GONE_SEED = toyworld.HELD_OUT_SEED + 9400  # indexed, then deleted: the catalogue can name it but not show it
BAD = {"not_an_image.png": b"hello", "empty.jpg": b""}  # files that are not images
REASONS = {"not_an_image.png": "not an image", "empty.jpg": "is empty"}  # what their rows say


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module, with the 2 CPUs CI has (started as the jobs start one)."""
    from pipelines.jobs import cluster

    ray = cluster.connect(cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory) -> tuple[Path, dict[str, toyworld.Scene]]:
    """300 toy scenes as PNG files named by seed, plus two files that are not images; {path: scene}."""
    folder = tmp_path_factory.mktemp("jobs") / "scenes"
    folder.mkdir()
    scenes = {}
    for seed in [*SEEDS, GONE_SEED]:
        scene = toyworld.scene(seed)
        path = folder / (f"{seed}.png" if seed != GONE_SEED else "gone.png")
        scene.image.save(path)
        scenes[str(path)] = scene
    for name, data in BAD.items():
        (folder / name).write_bytes(data)
    return folder, scenes


@pytest.fixture(scope="module")
def index_out(ray_cluster, toy_folder, tmp_path_factory):
    """The index job's shards over the toy folder (100 images a shard), then gone.png deleted; (OUT, report)."""
    folder, _ = toy_folder
    out = tmp_path_factory.mktemp("index-out")
    report = run_job(JobSpec("index", str(folder), out, shard_images=100))
    (folder / "gone.png").unlink()
    return out, report


def rows(out: Path) -> dict[str, dict]:
    """{path: row} over the finished shards."""
    found = {}
    for file in shards.shard_files(out):
        for row in pq.read_table(file).to_pylist():
            assert row["path"] not in found, f"{row['path']} is in two shards"
            found[row["path"]] = row
    return found


def same(a: toyworld.Scene, b: toyworld.Scene) -> bool:
    return (a.color, a.shape) == (b.color, b.shape)


def test_index_job_embeds_every_image_as_the_single_process_indexer_does(index_out, toy_folder, cache_dir):
    out, report = index_out
    folder, scenes = toy_folder
    found = rows(out)
    assert len(found) == len(SEEDS) + 1 + len(BAD) == report.images
    assert report.failures == len(BAD)
    for name, reason in REASONS.items():  # a row with its reason, never a failed job
        row = found[str(folder / name)]
        assert row["embedding"] is None and reason in row["error"]
    # The single-process path: the app's gallery, prepared with the same model
    gallery = Gallery.from_folder(folder)
    space = pipelines.load("search").space
    gallery.prepare(space)
    single = EmbeddingCache(cache_dir / EMBEDDINGS_FILE).get(space.key, [item.digest for item in gallery.items])
    assert len(single) == len(SEEDS)
    for item in gallery.items:
        row = found[item.path]
        assert row["error"] is None and row["sha256"] == item.digest == digest(Path(item.path).read_bytes())
        assert row["model"] == space.key
        np.testing.assert_allclose(np.asarray(row["embedding"], dtype=np.float32), single[item.digest], atol=1e-5)


def test_decoding_in_parallel_as_gpu_actors_do_gives_the_same_rows(ray_cluster, index_out, toy_folder, tmp_path):
    folder, _ = toy_folder
    report = run_job(JobSpec("index", str(folder), tmp_path / "out", shard_images=150, decode_threads=2))
    assert report.failures == len(BAD)
    parallel, first = rows(tmp_path / "out"), rows(index_out[0])
    assert set(parallel) == {str(p) for p in folder.iterdir()}
    for path, row in parallel.items():
        assert (row["error"], row["sha256"]) == (first[path]["error"], first[path]["sha256"])
        if row["embedding"] is not None:
            np.testing.assert_allclose(row["embedding"], first[path]["embedding"], atol=1e-5)


def test_caption_job_captions_as_the_caption_pipeline_does(ray_cluster, toy_folder, tmp_path):
    folder, scenes = toy_folder
    paths = [str(folder / f"{seed}.png") for seed in SEEDS[:40]]
    listed = tmp_path / "images.txt"  # a list of paths as SOURCE, with one that does not exist
    listed.write_text("\n".join([*paths, str(folder / "missing.png"), str(folder / "not_an_image.png")]) + "\n")
    out = tmp_path / "captions"
    report = run_job(JobSpec("caption", str(listed), out, shard_images=16))
    found = rows(out)
    assert report.images == 42 and report.failures == 2
    assert found[str(folder / "missing.png")]["error"] == "no such file"
    assert "not an image" in found[str(folder / "not_an_image.png")]["error"].lower()
    captioner = pipelines.load("caption")  # as the app calls it, a request's worth of images at a time
    expected = [caption.text for start in range(0, 40, 20) for caption in captioner(paths[start : start + 20])]
    assert [found[p]["caption"] for p in paths] == expected
    named = [scenes[p].color in found[p]["caption"] and scenes[p].shape in found[p]["caption"] for p in paths]
    assert np.mean(named) >= 0.9


def test_a_killed_job_resumes_without_redoing_finished_shards(ray_cluster, toy_folder, index_out, tmp_path):
    """The job runs as a separate driver on the module's Ray (RAY_ADDRESS, as on a cluster), is killed once it
    has written some shards, and the re-run writes only the others."""
    folder, _ = toy_folder
    out = tmp_path / "resumed"
    command = [sys.executable, "-m", "pipelines.jobs", "index", str(folder), str(out), "--profile", "toy"]
    command += ["--shard-images", "2", "--no-build"]  # many small shards: the kill lands halfway
    address = ray_cluster.get_runtime_context().gcs_address
    job = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "RAY_ADDRESS": address}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("*.parquet"))) < 5:
            assert job.poll() is None, job.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the job wrote no shard in 4 minutes"
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
    finally:
        job.kill()
        job.wait()
        job.stderr.close()
    before = {}
    while before != (before := {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}):
        time.sleep(2)  # the driver's actors are gone once no shard appears for a while
    planned = len(shards.plan("index", [str(p) for p in folder.iterdir()], 2))
    assert 0 < len(before) < planned, "the kill did not land halfway through the job"
    report = run_job(JobSpec("index", str(folder), out, shard_images=2))
    assert report.skipped == len(before) and report.shards == planned
    assert report.images == len(list(folder.iterdir())) - 2 * len(before)
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    resumed, first = rows(out), rows(index_out[0])
    assert set(resumed) == {str(p) for p in folder.iterdir()}
    for path, row in resumed.items():
        assert row["error"] == first[path]["error"]
        if row["embedding"] is not None:
            np.testing.assert_allclose(row["embedding"], first[path]["embedding"], atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_faiss_catalogues_answer_as_the_exact_one(index_out, toy_folder, tmp_path, kind):
    out, _ = index_out
    build_catalogue(out, kind="exact")
    exact = Catalogue(out)
    copy = tmp_path / "out"
    copy.mkdir()
    for file in out.glob("*.parquet"):
        (copy / file.name).symlink_to(file)
    info = build_catalogue(copy, kind=kind)
    assert info.kind == kind and info.count == len(SEEDS) + 1
    approximate = Catalogue(copy)
    searcher = pipelines.load("search")
    queries = [toyworld.caption_for(c, s) for c in toyworld.COLORS for s in toyworld.SHAPES]
    a = searcher(queries, top_k=5, gallery=approximate)
    e = searcher(queries, top_k=5, gallery=exact)
    overlap = [len({h.path for h in x.hits} & {h.path for h in y.hits}) / 5 for x, y in zip(a, e)]
    assert np.mean(overlap) >= 0.9


@pytest.fixture(scope="module")
def catalogue_app(index_out):
    """The app, served with the index job's catalogue (as `python app.py --catalogue OUT`)."""
    from demos import search
    from tests.serving import serve

    info = build_catalogue(index_out[0])
    assert info.kind == "exact" and info.failures == len(BAD)
    search.open_catalogue(index_out[0])
    demo = serve("toy")
    yield demo
    demo.close()
    search.open_catalogue(None)


def test_the_app_searches_the_catalogue_by_text(catalogue_app, toy_folder):
    folder, scenes = toy_folder
    client = Client(catalogue_app.local_url, verbose=False)
    wanted = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle")]
    right = []
    for color, shape in wanted:
        results, details = client.predict(
            query=toyworld.caption_for(color, shape), top_k=3, gallery="catalogue", api_name="/search"
        )
        assert len(results) == 3 and "closest to" in details
        for result in results:
            seed = result["caption"].split(" · ")[0]
            scene = scenes[str(folder / f"{seed}.png")]
            right.append((scene.color, scene.shape) == (color, shape))
    assert np.mean(right) >= 0.9


def test_the_app_names_catalogue_images_it_cannot_read(catalogue_app, toy_folder, tmp_path):
    folder, scenes = toy_folder
    query = tmp_path / "query.png"
    scenes[str(folder / "gone.png")].image.save(query)
    client = Client(catalogue_app.local_url, verbose=False)
    results, details = client.predict(
        image=handle_file(str(query)), top_k=3, gallery="catalogue", api_name="/search_image"
    )
    assert len(results) == 2  # the deleted image is listed by path, not shown
    assert f"`{folder / 'gone.png'}`" in details and "Not readable from this server" in details


def test_in_public_mode_an_unreadable_catalogue_image_is_named_without_its_path(catalogue_app, toy_folder, tmp_path):
    from demos import search
    from pipelines.core import runtime

    folder, scenes = toy_folder
    query = tmp_path / "query.png"
    scenes[str(folder / "gone.png")].image.save(query)
    runtime.configure(public=True)
    try:
        shown, details = search.search_image(str(query), 3, search.CATALOGUE)
    finally:
        runtime.configure(public=False)
    assert len(shown) == 2 and "- gone · " in details and str(folder) not in details


def test_a_catalogue_is_refused_a_query_from_another_model(index_out, tmp_path):
    build_catalogue(index_out[0])
    copy = tmp_path / "index"
    shutil.copytree(index_out[0] / "index", copy)
    info = json.loads((copy / "catalogue.json").read_text())
    (copy / "catalogue.json").write_text(json.dumps({**info, "model": "another-clip@0123456789abcdef/float32"}))
    with pytest.raises(pipelines.InputError, match="built with another model"):
        pipelines.load("search")([Query(text="a red circle")], gallery=Catalogue(copy))


def test_the_app_and_the_single_process_indexer_do_not_import_ray():
    script = "import sys, pipelines.index, pipelines.jobs, demos.search; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
