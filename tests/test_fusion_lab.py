"""The Fusion lab's heads on the toy CLIP space: the matching task needs both modalities, training is seeded, the
exported heads reload through pipelines.load and predict the same, and bad examples get clear refusals."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter

import numpy as np
import pytest

import pipelines
import toyworld
from pipelines.core import runtime
from pipelines.core.errors import InputError, ModelLoadError, UnknownModelError
from pipelines.fusion import lab, lab_tasks, shared_space

SEED = toyworld.HELD_OUT_SEED + 9100


@pytest.fixture(scope="module")
def match_examples(tmp_path_factory):
    before = runtime.settings().cache_dir
    runtime.configure(cache_dir=tmp_path_factory.mktemp("cache"))
    rows = lab_tasks.rows("toy-match")
    yield rows, lab.read_examples(rows, [], resolve=lab_tasks.resolve)
    runtime.configure(cache_dir=before)


@pytest.fixture(scope="module")
def trained(match_examples):
    return lab.train(match_examples[1], lab.LabOptions(), shared_space())


def test_the_matching_task_gives_neither_modality_a_clue(match_examples):
    rows, examples = match_examples
    assert len(examples) == 40
    by_image = Counter((row[0], row[2]) for row in rows)
    assert all(count == 1 for count in by_image.values()) and len(by_image) == 40  # each image: one match, one not
    described = Counter((" ".join(row[1].split()[-2:]), row[2]) for row in rows)  # "red circle", whatever wording
    assert {count for (description, label), count in described.items()} == {2}  # each as often matched as not
    assert len({description for description, _ in described}) == 10


def test_sum_and_concat_fusion_learn_matching_where_one_modality_cannot(trained):
    accuracy = {head: score.accuracy for head, score in trained.scores.items()}
    print("held-out accuracy:", accuracy, "|", trained.split)
    assert accuracy["sum"] >= 0.9 and accuracy["concat"] >= 0.9
    assert 0.4 <= accuracy["image"] <= 0.6 and 0.4 <= accuracy["text"] <= 0.6
    assert accuracy["late"] <= 0.65  # averaging two one-modality opinions cannot see agreement either
    assert trained.chance == 0.5 and "sharing an image or a text" in trained.split
    sum_confusion = trained.scores["sum"].confusion
    assert sum_confusion.sum() == 40 and np.trace(sum_confusion) == trained.scores["sum"].correct
    assert trained.best() in ("sum", "concat")


def test_training_is_deterministic_and_embeddings_are_encoded_once(match_examples, trained):
    space = shared_space()
    calls = dict(space.calls)
    again = lab.train(match_examples[1], lab.LabOptions(heads=("sum",)), space)
    assert dict(space.calls) == calls  # every image and text came from the cache
    assert again.losses["sum"] == trained.losses["sum"]
    assert again.scores["sum"].accuracy == trained.scores["sum"].accuracy
    assert (again.scores["sum"].confusion == trained.scores["sum"].confusion).all()
    other = lab.train(match_examples[1], lab.LabOptions(heads=("sum",), seed=1, steps=50), space)
    assert other.losses["sum"] != trained.losses["sum"][:50]


def test_the_loss_goes_down_for_every_head(trained):
    for head, losses in trained.losses.items():
        assert len(losses) == lab.LabOptions().steps and losses[-1] < losses[0], head


def test_training_reports_steps_as_it_goes(match_examples):
    events = list(lab.training(match_examples[1], lab.LabOptions(heads=("concat",), steps=40), shared_space()))
    steps = [event for event in events if isinstance(event, lab.Step)]
    assert steps[0].phase == "encoding"
    assert [s.step for s in steps if s.phase == "training"] == list(range(0, 41))  # 0: before training
    assert [s.fold for s in steps if s.phase == "held-out"] == [1, 2, 3, 4]
    assert steps[-1].done == steps[-1].total == lab.FOLDS + 1
    assert isinstance(events[-1], lab.LabResult)


def fresh_pairs() -> list[tuple[object, str, str]]:
    """New scenes of the task's descriptions, each with its own description and with another one."""
    rng = np.random.default_rng(SEED)
    rows = lab_tasks.rows("toy-match")
    described = sorted({" ".join(row[1].split()[-2:]) for row in rows})
    pairs = []
    for i, description in enumerate(described):
        image = toyworld.render([tuple(description.split())], rng).image
        other = described[(i + 3) % len(described)]
        pairs += [(image, f"a {description}", "match"), (image, f"a {other}", "no match")]
    return pairs


def test_exported_heads_reload_and_predict_the_same(trained, tmp_path):
    written = trained.heads.save(tmp_path / "heads")
    assert sorted(path.name for path in written) == ["fusion_heads.json", "fusion_heads.safetensors"]
    config = json.loads((tmp_path / "heads" / "fusion_heads.json").read_text())
    assert config["encoder"] == "toy-clip" and config["labels"] == ["match", "no match"]
    assert set(config["heads"]) == set(lab.HEADS)

    reloaded = pipelines.load("fusion-head", str(tmp_path / "heads"))
    pairs = fresh_pairs()
    before = trained.heads([(image, text) for image, text, _ in pairs])
    after = reloaded([(image, text) for image, text, _ in pairs])
    for old, new in zip(before, after):
        assert [p.label for p in old.predictions] == [p.label for p in new.predictions]
        assert np.allclose([p.confidence for p in old.predictions], [p.confidence for p in new.predictions])
    right = sum(result.by_head()["sum"].label == truth for result, (_, _, truth) in zip(after, pairs))
    assert right >= 0.8 * len(pairs)  # on scenes it never saw
    from_file = pipelines.load("fusion-head", tmp_path / "heads" / "fusion_heads.safetensors")
    assert from_file.labels == reloaded.labels


def test_reloading_refuses_heads_of_other_weights_or_damaged_files(trained, tmp_path):
    folder = tmp_path / "heads"
    trained.heads.save(folder)
    config = json.loads((folder / "fusion_heads.json").read_text())
    (folder / "fusion_heads.json").write_text(json.dumps({**config, "encoder_fingerprint": "0" * 16}))
    with pytest.raises(ModelLoadError, match="other weights"):
        pipelines.load("fusion-head", str(folder))
    (folder / "fusion_heads.json").write_text(json.dumps(config))
    (folder / "fusion_heads.safetensors").write_bytes(b"not tensors")
    with pytest.raises(ModelLoadError, match="damaged"):
        pipelines.load("fusion-head", str(folder))
    with pytest.raises(ModelLoadError, match="fusion_heads.safetensors and fusion_heads.json"):
        pipelines.load("fusion-head", str(tmp_path / "nothing-here"))


def test_public_mode_loads_no_heads_from_a_folder(trained, tmp_path):
    trained.heads.save(tmp_path)
    runtime.configure(public=True)
    try:
        with pytest.raises(UnknownModelError, match="public mode"):
            pipelines.load("fusion-head", str(tmp_path))
    finally:
        runtime.configure(public=False)


def scene_file(tmp_path, name: str, seed: int) -> str:
    path = tmp_path / name
    toyworld.scene(SEED + seed).image.save(path)
    return str(path)


def test_bad_examples_are_refused_with_what_to_do(tmp_path, monkeypatch):
    files = [scene_file(tmp_path, f"s{i}.png", i) for i in range(8)]
    good = [[f"s{i}.png", f"text {i}", "yes" if i % 2 else "no"] for i in range(8)]

    def refusal(rows, uploads=files) -> str:
        with pytest.raises(InputError) as info:
            lab.check_examples(lab.read_examples(rows, uploads))
        return str(info.value)

    assert "at least 4 examples" in refusal(good[:6]) and "'no' has 3" in refusal(good[:6])
    assert "at least two labels" in refusal([[f"s{i}.png", "t", "yes"] for i in range(8)])
    assert "Row 2 has no image" in refusal([good[0], ["", "a text", "yes"], *good[2:]])
    assert "Row 3 (s2.png) has no text" in refusal([*good[:2], ["s2.png", " ", "no"], *good[3:]])
    assert "not among the uploaded files" in refusal([*good[:7], ["s9.png", "t", "yes"]])
    assert "No examples" in refusal([["", "", ""]])
    monkeypatch.setenv("MM_MAX_FUSION_EXAMPLES", "6")
    assert "limit is 6 examples" in refusal(good)


def test_an_unreadable_image_is_named_by_its_row(tmp_path, match_examples):
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"these are my notes, not an image\n" * 20)
    rows = [*match_examples[0][:39], ["notes.png", "a red circle", "match"]]
    examples = lab.read_examples(rows, [str(notes)], resolve=lab_tasks.resolve)
    with pytest.raises(InputError, match="Row 40's image 'notes.png' cannot be used"):
        lab.train(examples, lab.LabOptions(heads=("sum",), steps=20), shared_space())


def test_examples_come_from_a_csv_or_a_zip_of_images_and_a_csv(tmp_path, monkeypatch):
    rows = [[f"s{i}.png", f"text {i}", "yes" if i % 2 else "no"] for i in range(8)]
    table = io.StringIO()
    csv.writer(table).writerows([["Image", "Text", "Label"], *rows])
    files = [scene_file(tmp_path, f"s{i}.png", i) for i in range(8)]
    (tmp_path / "examples.csv").write_text(table.getvalue())
    from_csv = lab.read_examples(None, [*files, str(tmp_path / "examples.csv")])
    assert [(e.name, e.text, e.label) for e in from_csv] == [tuple(row) for row in rows]
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as archive:
        archive.writestr("task/examples.csv", table.getvalue())
        for file in files:
            archive.write(file, f"task/images/{file.rsplit('/', 1)[-1]}")
    from_zip = lab.read_examples([], [str(tmp_path / "task.zip")])
    assert [e.label for e in from_zip] == [row[2] for row in rows] and isinstance(from_zip[0].image, bytes)
    monkeypatch.setenv("MM_MAX_FUSION_EXAMPLES", "5")
    with pytest.raises(InputError, match="'task/examples.csv' brings them past 5"):  # while unpacking
        lab.read_examples([], [str(tmp_path / "task.zip")])
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as archive:
        for file in files:
            archive.write(file, f"images/{file.rsplit('/', 1)[-1]}")
    with pytest.raises(InputError, match="'images.zip' holds more than 5 files"):
        lab.read_examples([], [str(tmp_path / "images.zip")])
    monkeypatch.delenv("MM_MAX_FUSION_EXAMPLES")
    (tmp_path / "bad.csv").write_text("picture,words\nx.png,hello\n")
    with pytest.raises(InputError, match="header row naming the columns image, text, label"):
        lab.read_examples(None, [str(tmp_path / "bad.csv")])


def test_csvs_are_refused_as_soon_as_their_rows_pass_the_limit_and_a_malformed_one_is_named(tmp_path):
    many = "image,text,label\n" + "a,b,c\n" * 150_000  # about a megabyte of rows, and it zips to a few KB
    with zipfile.ZipFile(tmp_path / "rows.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(4):
            archive.writestr(f"part{i}.csv", many)
    with pytest.raises(InputError, match="'part0.csv' brings them past 200; the limit is 200 examples per request"):
        lab.read_examples([], [str(tmp_path / "rows.zip")])
    with zipfile.ZipFile(tmp_path / "csvs.zip", "w") as archive:
        for i in range(lab.CSV_FILES + 1):
            archive.writestr(f"part{i}.csv", "image,text,label\n")
    with pytest.raises(InputError, match=f"More than {lab.CSV_FILES} CSV files in one training"):
        lab.read_examples([], [str(tmp_path / "csvs.zip")])
    (tmp_path / "long.csv").write_text("image,text,label\nx.png," + "w" * 200_000 + ",yes\n")
    with pytest.raises(InputError, match="'long.csv' is not a readable CSV"):
        lab.read_examples(None, [str(tmp_path / "long.csv")])


def test_rows_cannot_name_server_files():
    assert lab_tasks.resolve("/etc/passwd") is None
    assert lab_tasks.resolve("toy-match/../../secrets.png") is None
    assert lab_tasks.resolve("../toy-match/00.png") is None


@pytest.mark.parametrize("task", ["toy-colour", "photo-match", "photo-topic"])
def test_every_bundled_task_resolves_and_trains(match_examples, task):
    rows = lab_tasks.rows(task)
    examples = lab.read_examples(rows, [], resolve=lab_tasks.resolve)
    assert all(lab_tasks.resolve(row[0]).is_file() for row in rows)
    counts = Counter(row[2] for row in rows)
    assert len(counts) >= 2 and min(counts.values()) >= lab.MIN_PER_LABEL
    result = lab.train(examples, lab.LabOptions(heads=("sum",), steps=20), shared_space())
    assert result.examples == len(rows) and result.scores["sum"].total == len(rows)
    if task == "photo-match":  # photo pairs swap captions: each held-out block is new photos and new captions
        assert "sharing an image or a text" in result.split
