"""Examples follow the profile: the toy profile offers toy scenes and shape queries (all its models know), the default
profile offers photos and photo queries; the toy search finds each toy query's scene first."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

import pipelines
from demos import examples
from pipelines.core import runtime
from tests.conftest import ROOT

TOY = ROOT / "assets/examples/toy"
PHOTOS = ROOT / "assets/examples/photos"


CHIPS = {"studio-examples", "search-image-examples", "classify-examples"}  # Studio's and Search's example images


def offered_images(profile: str) -> set[str]:
    """The file names of the example images Studio and Search offer when the app is served with ``profile``."""
    import app

    runtime.configure(profile=profile)
    try:
        demo = app.build_demo()
    finally:
        runtime.configure(profile="toy")
    return {
        value["orig_name"]
        for block in demo.blocks.values()
        if isinstance(block, gr.Dataset) and block.elem_id in CHIPS
        for sample in block.samples
        for value in sample
        if isinstance(value, dict) and value.get("orig_name")
    }


def test_the_toy_profile_offers_toy_scenes_only():
    offered = offered_images("toy")
    assert offered and offered <= {path.name for path in TOY.iterdir()}, sorted(offered)


def test_the_default_profile_offers_photos_only():
    offered = offered_images("default")
    assert offered and offered <= {path.name for path in PHOTOS.iterdir()}, sorted(offered)


def test_images_follow_the_running_profile(default_profile):
    assert examples.images() == examples.photos()
    assert examples.images("toy") == examples.toy_scenes()
    assert all(Path(q).exists() for q in examples.images())


def test_each_toy_query_finds_its_scene_first():
    queries = examples.queries("toy")
    results = pipelines.load("search")(queries, top_k=1)
    for query, result in zip(queries, results):
        assert Path(result.hits[0].path).stem == "_".join(query.split()[1:]), (query, result.hits[0].path)


@pytest.mark.parametrize("query", examples.queries("default"))
def test_each_photo_query_names_a_bundled_photo(query):
    assert (PHOTOS / f"{query.split()[-1]}.jpg").exists()
