"""The Caption tab served on loopback, called as a remote user would: through gradio_client."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

import toyworld

HEADERS = ["caption", "captioner score", "CLIP similarity", "fused score"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """(scene, PNG path) for fresh toy scenes."""
    directory = tmp_path_factory.mktemp("caption-scenes")
    pairs = []
    for index, scene in enumerate(toyworld.scenes(6, start_seed=toyworld.HELD_OUT_SEED + 7100)):
        path = directory / f"scene{index}_{scene.color}_{scene.shape}.png"
        scene.image.save(path)
        pairs.append((scene, path))
    return pairs


def names(text: str, scene: toyworld.Scene) -> bool:
    return scene.color in text.split() and scene.shape in text.split()


def test_the_image_alone_gives_the_best_caption_then_the_candidates(client, scenes):
    for scene, path in scenes[:3]:
        best, table = client.predict(handle_file(str(path)), api_name="/caption")
        assert names(best, scene)
        assert table["headers"] == HEADERS
        assert len(table["data"]) == 3 and table["data"][0][0] == best
        fused = [row[3] for row in table["data"]]
        assert fused == sorted(fused, reverse=True)


def test_vit_gpt2_with_sampling_and_a_seed_is_reproducible(client, scenes):
    scene, path = scenes[3]

    def ask():
        return client.predict(
            handle_file(str(path)),
            model="toy-vit-gpt2",
            decoding="sampling",
            candidates=4,
            temperature=0.7,
            seed=42,
            api_name="/caption",
        )

    first = ask()
    assert names(first[0], scene)
    assert ask() == first


def test_prefix_and_clip_only_ranking(client, scenes):
    scene, path = scenes[4]
    best, table = client.predict(handle_file(str(path)), prefix="a picture of", clip_weight=1.0, api_name="/caption")
    assert best.startswith("a picture of") and names(best, scene)
    similarity = [row[2] for row in table["data"]]
    assert similarity == sorted(similarity, reverse=True)  # weight 1: CLIP alone orders the candidates


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(candidates=0), "candidate captions must be a whole number from 1 to 10; got 0"),
        (dict(candidates=11), "from 1 to 10; got 11"),
        (dict(max_new_tokens=0), "maximum caption length (new tokens) must be a whole number from 1 to 100; got 0"),
        (dict(candidates=5, beams=2), "5 candidates need at least 5 beams (got 2)"),
        (dict(min_new_tokens=20, max_new_tokens=10), "lower the minimum or raise the maximum"),
        (dict(model="toy-vit-gpt2", prefix="a photography of"), "cannot continue a text prefix"),
        (dict(decoding="sampling", temperature=0), "temperature must be a number more than 0"),
        (dict(clip_weight=1.5), "CLIP weight must be a number from 0"),
        (dict(model="nobody/no-such-captioner-anywhere"), "nobody/no-such-captioner-anywhere"),
    ],
)
def test_bad_options_get_our_message_and_the_server_keeps_serving(client, scenes, options, message):
    scene, path = scenes[0]
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(path)), **options, api_name="/caption")
    assert message in str(info.value)
    assert names(client.predict(handle_file(str(path)), api_name="/caption")[0], scene)


def test_a_file_that_is_not_an_image_is_refused(client, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("meeting notes, not a picture\n" * 20)
    with pytest.raises(AppError, match="This file is not an image"):
        client.predict(handle_file(str(bad)), api_name="/caption")


def test_batch_gives_one_row_per_image_in_order_and_the_files_round_trip(client, scenes, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("meeting notes, not a picture\n" * 10)
    paths = [scenes[0][1], scenes[1][1], bad, scenes[2][1], scenes[5][1]]
    table, files = client.predict([handle_file(str(p)) for p in paths], api_name="/caption_batch")
    assert table["headers"] == ["file", "caption", "captioner score", "CLIP similarity", "fused score", "problem"]
    assert [row[0] for row in table["data"]] == [p.name for p in paths]
    for row, (scene, _) in zip([table["data"][i] for i in (0, 1, 3, 4)], [scenes[0], scenes[1], scenes[2], scenes[5]]):
        assert names(row[1], scene) and row[5] == ""
    assert table["data"][2][1] == "" and "not an image" in table["data"][2][5]

    by_suffix = {Path(f).suffix: Path(f) for f in files}
    assert sorted(by_suffix) == [".csv", ".json"]
    with by_suffix[".csv"].open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == table["headers"]
    assert rows[1:] == [["" if cell is None else str(cell) for cell in row] for row in table["data"]]
    records = json.loads(by_suffix[".json"].read_text(encoding="utf-8"))
    assert records == [dict(zip(table["headers"], row)) for row in table["data"]]


def test_batch_with_no_usable_image_names_each_file(client, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello\n" * 30)
    with pytest.raises(AppError) as info:
        client.predict(
            [handle_file(str(tmp_path / name)) for name in ("empty.png", "text.jpg")], api_name="/caption_batch"
        )
    assert "None of the files could be captioned" in str(info.value)
    assert "empty.png" in str(info.value) and "text.jpg" in str(info.value)


def test_none_for_beams_and_length_means_the_chosen_models_own_defaults(client, scenes):
    # Omitted values are the tab's initial ones (the default model's: 3 beams); None asks for the model's own
    # (ViT-GPT2: 4 beams), so 4 candidates fit
    scene, path = scenes[5]
    best, table = client.predict(
        handle_file(str(path)), model="toy-vit-gpt2", candidates=4, beams=None, max_new_tokens=None, api_name="/caption"
    )
    assert names(best, scene) and 1 <= len(table["data"]) <= 4
    with pytest.raises(AppError, match="beams"):
        client.predict(handle_file(str(path)), model="toy-vit-gpt2", candidates=4, api_name="/caption")
