"""The Fusion lab through gradio_client, as a script would use it: /train_fusion on the toy matching task, then
/predict_fusion, the downloaded heads reloading in Python, and bad examples refused with a message."""

from __future__ import annotations

import csv
import shutil

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import pipelines
import toyworld

pytestmark = pytest.mark.slow

RED_CIRCLE = "assets/examples/toy/red_circle.png"


def table(rows) -> dict:
    return {"headers": ["image", "text", "label"], "data": rows}


@pytest.fixture(scope="module")
def trained(client):
    """The toy matching task trained through the API, in the module's client session: with no arguments, the
    examples table holds the profile's first bundled task (README's Fusion lab API)."""
    return client.predict(api_name="/train_fusion")


def test_train_fusion_compares_the_heads_on_held_out_examples(trained):
    losses, accuracy, summary, confusion, files = trained
    scores = dict(accuracy["data"])
    assert scores["sum fusion"] >= 0.9 and scores["concat fusion"] >= 0.9
    assert 0.4 <= scores["image only"] <= 0.6 and 0.4 <= scores["text only"] <= 0.6
    assert "Best:" in summary and "on 40 examples" in summary and "grouped 4-fold" in summary
    assert {row[2] for row in losses["data"]} == set(scores)  # one loss curve per head
    assert confusion["headers"] == ["head", "true label", "predicted match", "predicted no match"]
    assert sorted(path.rsplit("/", 1)[-1] for path in files) == ["fusion_heads.json", "fusion_heads.safetensors"]


def test_predict_fusion_runs_the_session_heads_and_the_download_reloads(client, trained, tmp_path):
    predicted = client.predict(handle_file(RED_CIRCLE), "a red circle", api_name="/predict_fusion")
    by_head = {head: (label, confidence) for head, label, confidence in predicted["data"]}
    assert by_head["sum fusion"][0] == "match" and by_head["concat fusion"][0] == "match"
    mismatched = client.predict(handle_file(RED_CIRCLE), "a blue square", api_name="/predict_fusion")
    assert dict((head, label) for head, label, _ in mismatched["data"])["sum fusion"] == "no match"

    for path in trained[-1]:
        shutil.copy(path, tmp_path)
    heads = pipelines.load("fusion-head", str(tmp_path))
    [result] = heads([(RED_CIRCLE, "a red circle")])
    assert {lab_title(p.head): p.label for p in result.predictions} == {h: v[0] for h, v in by_head.items()}


def test_predicting_on_a_file_that_is_not_an_image_says_so(client, trained, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"these are my meeting notes, not an image\n" * 20)
    with pytest.raises(AppError, match="The image cannot be used"):
        client.predict(handle_file(str(notes)), "a red circle", api_name="/predict_fusion")
    assert client.predict(handle_file(RED_CIRCLE), "a red circle", api_name="/predict_fusion")["data"]  # still serving


def lab_title(head: str) -> str:
    from pipelines.fusion.lab import HEAD_TITLES

    return HEAD_TITLES[head]


def test_predicting_before_training_says_to_train_first(toy_app):
    fresh = Client(toy_app.local_url, verbose=False)  # a session of its own, with no heads yet
    with pytest.raises(AppError, match="Train the heads first"):
        fresh.predict(handle_file(RED_CIRCLE), "a red circle", api_name="/predict_fusion")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fusion-scenes")
    paths = []
    for i in range(8):
        path = folder / f"scene{i}.png"
        toyworld.scene(toyworld.HELD_OUT_SEED + 9200 + i).image.save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize(
    "rows,expected",
    [
        ([[f"scene{i}.png", "a shape", "yes"] for i in range(8)], "at least two labels"),
        ([[f"scene{i}.png", "a shape", "yes" if i < 6 else "no"] for i in range(8)], "at least 4 examples"),
        ([[f"scene{i}.png", "" if i == 3 else "a shape", "yes" if i % 2 else "no"] for i in range(8)], "no text"),
        ([["elsewhere.png", "a shape", "yes"]], "not among the uploaded files"),
        ([["/etc/hostname", "a shape", "yes"]], "not among the uploaded files"),
    ],
)
def test_bad_examples_get_our_message(client, scenes, rows, expected):
    with pytest.raises(AppError, match=expected):
        client.predict(table(rows), [handle_file(path) for path in scenes], api_name="/train_fusion")


def test_a_csv_with_uploaded_images_trains_and_the_limit_is_stated(client, scenes, tmp_path, monkeypatch):
    with (tmp_path / "examples.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["image", "text", "label"])
        writer.writerows([f"scene{i}.png", "what color is it?", "yes" if i % 2 else "no"] for i in range(8))
    uploads = [handle_file(path) for path in [*scenes, str(tmp_path / "examples.csv")]]
    _, accuracy, summary, *_ = client.predict(table([]), uploads, ["image", "sum"], 3, api_name="/train_fusion")
    assert [head for head, _ in accuracy["data"]] == ["image only", "sum fusion"] and "8 examples" in summary
    monkeypatch.setenv("MM_MAX_FUSION_EXAMPLES", "5")  # read per request: the server shares this process
    with pytest.raises(AppError, match="the limit is 5 examples per request"):
        client.predict(table([]), uploads, api_name="/train_fusion")
