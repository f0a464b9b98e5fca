"""Approximate indexes agree with exact search; large galleries switch to them; the offline indexing CLI."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

import pipelines
import toyworld
from pipelines import index
from pipelines.search import vector_index
from pipelines.search.gallery import Gallery


def clustered_unit_vectors(count: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around random centres, like embeddings of a photo collection (many near-duplicates)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    vectors = centres[rng.integers(clusters, size=count)] + 0.6 * rng.standard_normal((count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_10_against_brute_force(kind):
    vectors = clustered_unit_vectors(20_000, 64, 200, seed=1)
    queries = clustered_unit_vectors(20_200, 64, 200, seed=1)[20_000:]  # same centres, new points
    _, exact = vector_index.build(vectors, "exact").search(queries, 10)
    _, approximate = vector_index.build(vectors, kind).search(queries, 10)
    assert vector_index.recall_at(10, approximate, exact) >= 0.95


def test_exact_search_orders_by_score_then_insertion():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    scores, ids = vector_index.build(vectors, "exact").search(np.array([[1, 0]], dtype=np.float32), 3)
    assert ids.tolist() == [[0, 2, 3]] and np.allclose(scores, [[1, 1, 0.6]])


def test_the_index_kind_follows_the_gallery_size():
    assert vector_index.choose_kind(500) == "exact"
    assert vector_index.choose_kind(vector_index.BRUTE_FORCE_MAX + 1) == "hnsw"
    assert vector_index.choose_kind(vector_index.HNSW_MAX + 1) == "ivf"


@pytest.fixture
def scenes_dir(tmp_path):
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    for seed in range(toyworld.HELD_OUT_SEED + 9100, toyworld.HELD_OUT_SEED + 9140):
        scene = toyworld.scene(seed)
        scene.image.save(folder / f"{scene.color}_{scene.shape}_{seed}.png")
    return tmp_path / "photos"


def test_a_gallery_past_the_threshold_is_searched_through_faiss(cache_dir, scenes_dir, monkeypatch):
    space = pipelines.load("search").space
    exact = Gallery.from_folder(scenes_dir)
    assert exact.prepare(space).index_kind == "exact"
    monkeypatch.setattr(vector_index, "BRUTE_FORCE_MAX", 10)
    large = Gallery.from_folder(scenes_dir)
    assert large.prepare(space).index_kind == "hnsw"
    assert list((cache_dir / "indexes").glob("*.faiss"))  # saved: a restart reads it back
    queries = space.embed_texts(["a red circle", "a blue square", "a green triangle"])
    assert [[i.path for i, _ in row] for row in large.search(space, queries, 3)] == [
        [i.path for i, _ in row] for row in exact.search(space, queries, 3)
    ]
    again = Gallery.from_folder(scenes_dir)
    assert again.prepare(space).index_kind == "hnsw"


def test_the_cli_indexes_a_folder_once_and_searches_it(cache_dir, scenes_dir, capsys):
    assert index.main([str(scenes_dir), "--cache-dir", str(cache_dir), "--query", "a red circle", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "40 images indexed with toy-clip (exact index, 40 encoded, 0 from the cache)" in out
    assert out.strip().splitlines()[-1].split("/")[-1].startswith("red_circle")
    assert index.main([str(scenes_dir), "--cache-dir", str(cache_dir)]) == 0
    assert "0 encoded, 40 from the cache" in capsys.readouterr().out


def test_the_cli_explains_a_missing_folder(cache_dir, tmp_path, capsys):
    assert index.main([str(tmp_path / "nowhere"), "--cache-dir", str(cache_dir)]) == 2
    assert "There is no folder at" in capsys.readouterr().err


def test_galleries_decode_large_jpegs_at_reduced_scale_with_nearly_the_same_embeddings():
    from pipelines.core.registry import PROJECT_ROOT
    from pipelines.search.encoding import decode_pixels, input_size

    space = pipelines.load("search").space
    size = input_size(space)
    photos = sorted((PROJECT_ROOT / "assets/examples/photos").glob("*.jpg"))
    reduced = [decode_pixels(space, path, size) for path in photos]  # the DCT decodes at 1/2 to 1/8 scale
    full = [space.pixels(path) for path in photos]
    assert any(float((a - b).abs().max()) > 0 for a, b in zip(reduced, full))
    cosines = np.sum(space.embed_pixels(reduced) * space.embed_pixels(full), axis=1)
    assert np.all(cosines > 0.99), cosines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is a Linux feature")
def test_gallery_decoding_runs_at_lowest_priority_without_slowing_the_caller():
    from pipelines.search import encoding

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = niceness()
    with encoding.decoding_pool() as pool:  # the pool encode_images decodes on
        assert pool.submit(niceness).result() == max(before, encoding.DECODE_NICENESS)
    assert niceness() == before
