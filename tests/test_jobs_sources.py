"""What a job reads and where it writes, without Ray: the forms of SOURCE, and an output folder's shards and manifest
(the same plan on a re-run; another model's folder refused)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toyworld
from pipelines.core.errors import InputError
from pipelines.jobs import shards
from pipelines.jobs.sources import Unreadable, list_images, read_bytes


@pytest.fixture
def scenes(tmp_path):
    """Four toy scenes in a nested folder, and a text file that is not an image."""
    for i, sub in enumerate(["a", "a", "b/c", "b/c"]):
        (tmp_path / "photos" / sub).mkdir(parents=True, exist_ok=True)
        toyworld.scene(toyworld.HELD_OUT_SEED + 9500 + i).image.save(tmp_path / "photos" / sub / f"{i}.png")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    return tmp_path / "photos"


def test_a_folder_lists_its_images_recursively_in_a_stable_order(scenes):
    found = list_images(scenes)
    assert [p.removeprefix(str(scenes) + "/") for p in found] == ["a/0.png", "a/1.png", "b/c/2.png", "b/c/3.png"]


def test_a_text_list_a_parquet_list_and_a_glob_name_the_same_images(scenes, tmp_path):
    wanted = list_images(scenes)
    listed = tmp_path / "images.txt"
    listed.write_text("# my images\n" + "\n".join(wanted + [wanted[0]]) + "\n\n")  # a repeat is listed once
    table = tmp_path / "images.parquet"
    pq.write_table(pa.table({"path": wanted}), table)
    assert list_images(listed) == wanted
    assert list_images(table) == wanted
    assert list_images(f"{scenes}/**/*.png") == wanted


def test_sources_that_name_nothing_say_what_to_give(tmp_path):
    with pytest.raises(InputError, match="no folder, list or file"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        list_images(tmp_path / "empty")
    table = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"file": ["a.png"]}), table)
    with pytest.raises(InputError, match="no column named path"):
        list_images(table)


def test_an_unreadable_image_gives_its_reason(tmp_path):
    with pytest.raises(Unreadable, match="no such file"):
        read_bytes(str(tmp_path / "missing.png"))
    with pytest.raises(Unreadable, match="could not be read"):
        read_bytes("nosuchscheme://bucket/image.png")


def test_the_same_source_plans_the_same_shards_and_a_changed_shard_gets_a_new_name():
    paths = [f"/images/{i}.png" for i in range(25)]
    plan = shards.plan("index", paths, 10)
    assert [len(shard.paths) for shard in plan] == [10, 10, 5]
    assert [s.name for s in shards.plan("index", list(paths), 10)] == [s.name for s in plan]
    changed = shards.plan("index", paths[:24] + ["/images/other.png"], 10)
    assert [a.name == b.name for a, b in zip(plan, changed)] == [True, True, False]


def test_an_output_folder_refuses_another_model_or_shard_size(tmp_path):
    shards.start(tmp_path, shards.Manifest("index", "toy-clip", 100))
    shards.start(tmp_path, shards.Manifest("index", "toy-clip", 100))  # the same job again: resumed
    with pytest.raises(InputError, match="made with toy-clip"):
        shards.start(tmp_path, shards.Manifest("index", "clip-vit-b-32", 100))
    with pytest.raises(InputError, match="--shard-images 100"):
        shards.start(tmp_path, shards.Manifest("index", "toy-clip", 50))


def test_local_images_are_listed_by_absolute_path_and_urls_as_given(scenes, tmp_path, monkeypatch):
    """A cluster's workers run in another folder: a relative SOURCE, or a relative path in a list, still names the
    same files there."""
    wanted = list_images(scenes)
    monkeypatch.chdir(scenes.parent)
    assert list_images("photos") == list_images("./photos/**/*.png") == wanted
    listed = tmp_path / "mixed.txt"
    url = "https://images.example.com/a.jpg?size=large"
    listed.write_text(f"photos/a/0.png\n{url}\ns3://bucket/b.png\n")
    assert list_images(listed) == [wanted[0], url, "s3://bucket/b.png"]


def test_an_output_folder_in_the_checkout_is_not_uploaded_to_a_cluster(tmp_path):
    from pipelines.core.registry import PROJECT_ROOT
    from pipelines.jobs.cluster import UPLOAD_EXCLUDES, upload_excludes

    assert upload_excludes(PROJECT_ROOT / "runs" / "out") == [*UPLOAD_EXCLUDES, "/runs/out"]
    assert upload_excludes(tmp_path / "out") == upload_excludes() == UPLOAD_EXCLUDES
