"""A catalogue as the app serves it, without Ray: searches showing one image at once all get its copy, and in public
mode neither a URL (its user, password or signed token) nor the server path of the model it was built with is shown."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipelines
import toyworld
from pipelines.core import runtime
from pipelines.jobs import build_catalogue
from pipelines.jobs.catalogue import Catalogue, shown_copy
from pipelines.search.retrieval import Query

SECRET = "user:hunter2@"  # in the catalogue's URLs: never shown to strangers
TOKEN = "X-Amz-Signature=abc.def"


def test_searches_showing_the_same_image_at_once_all_get_a_whole_copy(tmp_path):
    image = tmp_path / "scene.png"
    toyworld.scene(toyworld.HELD_OUT_SEED + 9600).image.save(image)
    for attempt in range(5):  # a few rounds: the searches race differently each time
        folder, copies, barrier = tmp_path / f"shown-{attempt}", [], threading.Barrier(12)

        def show(folder=folder, copies=copies, barrier=barrier):
            barrier.wait()
            copies.append(shown_copy(str(image), folder))

        threads = [threading.Thread(target=show) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(copies) == 12 and len(set(copies)) == 1 and copies[0] is not None
        assert open(copies[0], "rb").read() == image.read_bytes()
        assert [p.name for p in folder.iterdir()] == [copies[0].rpartition("/")[2]]  # no temporary file left


@pytest.fixture(scope="module")
def url_catalogue(tmp_path_factory):
    """A catalogue of four images the job read from signed URLs (embedded as their captions' texts)."""
    out = tmp_path_factory.mktemp("url-catalogue")
    space = pipelines.load("search").space
    scenes = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle")]
    vectors = space.embed_texts([toyworld.caption_for(color, shape) for color, shape in scenes])
    paths = [f"https://{SECRET}images.example.com/{c}_{s}.jpg?{TOKEN}" for c, s in scenes]
    table = pa.table(
        {
            "path": pa.array(paths, pa.string()),
            "sha256": pa.array([f"{i:064x}" for i in range(len(paths))], pa.string()),
            "embedding": pa.array([list(map(float, v)) for v in vectors], pa.list_(pa.float32())),
            "model": pa.array([space.key] * len(paths), pa.string()),
            "error": pa.array([None] * len(paths), pa.string()),
        }
    )
    pq.write_table(table, out / "index-00000-000000000000.parquet")
    build_catalogue(out)
    return out


def test_in_public_mode_a_url_in_a_catalogue_is_named_by_its_file_only(url_catalogue):
    from demos import search

    search.open_catalogue(url_catalogue)
    try:
        _, private = search.search(toyworld.caption_for("red", "circle"), 3, search.CATALOGUE)
        runtime.configure(public=True)
        try:
            shown, public = search.search(toyworld.caption_for("red", "circle"), 3, search.CATALOGUE)
        finally:
            runtime.configure(public=False)
    finally:
        search.open_catalogue(None)
    assert SECRET in private  # the server's own users see where the job read each image
    assert shown == [] and "- red circle · " in public
    assert SECRET not in public and "example.com" not in public and "Signature" not in public and "abc" not in public


@pytest.mark.parametrize(
    "source, public_name",
    [("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "clip-vit-b-32"), ("/srv/models/our-clip", None)],
)
def test_a_refused_model_is_named_in_public_mode_by_registry_name_only(url_catalogue, tmp_path, source, public_name):
    index = tmp_path / "index"
    index.mkdir()
    info = json.loads((url_catalogue / "index" / "catalogue.json").read_text())
    (index / "catalogue.json").write_text(json.dumps({**info, "model": f"{source}@0123456789abcdef/float32"}))
    catalogue, query = Catalogue(index), [Query(text="a red circle")]
    with pytest.raises(pipelines.InputError, match="built with another model") as private:
        pipelines.load("search")(query, gallery=catalogue)
    runtime.configure(public=True)
    try:
        with pytest.raises(pipelines.InputError, match="built with another model") as public:
            pipelines.load("search")(query, gallery=catalogue)
    finally:
        runtime.configure(public=False)
    assert source in str(private.value)
    assert source not in str(public.value) and "/srv" not in str(public.value)
    if public_name:
        assert f"({public_name})" in str(public.value)
