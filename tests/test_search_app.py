"""The Search tab's API as remote users see it: galleries per session, image and composed queries, /classify."""

from __future__ import annotations

import io
import zipfile

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import toyworld

pytestmark = pytest.mark.slow


@pytest.fixture
def client(app_with_own_cache):
    return Client(app_with_own_cache.local_url, verbose=False)  # a new visitor (browser session) each time


def scene_file(directory, color: str, shape: str, seed: int):
    path = directory / f"{color}_{shape}_{seed}.png"
    toyworld.render([(color, shape)], __import__("numpy").random.default_rng(seed)).image.save(path)
    return path


def captions(results) -> list[str]:
    return [item["caption"] for item in results]


def test_text_search_returns_the_gallery_and_a_note(client):
    results, details = client.predict("a yellow square", api_name="/search")
    assert captions(results)[0].startswith("yellow square")
    assert "closest to *a yellow square*" in details


def test_image_and_composed_search(client, tmp_path):
    red_circle = handle_file(str(scene_file(tmp_path, "red", "circle", 5)))
    alone, _ = client.predict(red_circle, 24, api_name="/search_image")
    assert captions(alone)[0].startswith("red circle")
    composed, details = client.predict(red_circle, "blue", 0.5, "", 24, api_name="/search_composed")
    rank = {
        name: [c.split(" · ")[0] for c in captions(results)].index("blue circle")
        for name, results in (("alone", alone), ("composed", composed))
    }
    assert rank["composed"] < rank["alone"] and rank["composed"] <= 2
    assert "+ blue" in details


def test_negative_text_over_the_api(client):
    results, _ = client.predict("a circle", top_k=4, gallery="examples", negative="red", api_name="/search")
    assert not any(c.startswith("red") for c in captions(results))


def test_classify_returns_label_probabilities(client, tmp_path):
    scores = client.predict(handle_file(str(scene_file(tmp_path, "purple", "square", 6))), api_name="/classify")
    assert scores["label"] == "square"  # the default labels: the toy shapes
    assert abs(sum(c["confidence"] for c in scores["confidences"]) - 1) < 0.02 or len(scores["confidences"]) == 5
    scores = client.predict(
        handle_file(str(scene_file(tmp_path, "green", "triangle", 7))),
        "green triangle, green circle, red triangle",
        "a {}",
        api_name="/classify",
    )
    assert scores["label"] == "green triangle"


def test_a_gallery_belongs_to_its_session_only(app_with_own_cache, tmp_path):
    alice, bob = (
        Client(app_with_own_cache.local_url, verbose=False),
        Client(app_with_own_cache.local_url, verbose=False),
    )
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for color, shape, seed in [("orange", "square", 11), ("green", "circle", 12), ("blue", "triangle", 13)]:
            z.write(scene_file(tmp_path, color, shape, seed), f"album/{color}_{shape}_{seed}.png")
    status, source = alice.predict([handle_file(str(archive))], api_name="/add_images")
    assert "3 images in your gallery" in status and source == "mine"
    results, _ = alice.predict("an orange square", top_k=2, gallery="mine", api_name="/search")
    assert captions(results)[0].startswith("orange square 11") and len(results) == 2
    with pytest.raises(AppError, match="Your gallery is empty"):
        bob.predict("an orange square", 2, "mine", api_name="/search")
    bob_results, _ = bob.predict("an orange square", 6, "examples", api_name="/search")
    assert not any("11" in c for c in captions(bob_results))
    status, _ = alice.predict([handle_file(str(archive))], api_name="/add_images")  # the same zip again
    assert "3 images in your gallery" in status and "3 duplicates skipped" in status


@pytest.mark.parametrize(
    "query,expected",
    [
        ("   ", "Type what to look for"),
        ("🔍✨🌈", "no letters or digits"),
    ],
)
def test_bad_queries_are_refused_and_the_server_keeps_serving(client, query, expected):
    with pytest.raises(AppError, match=expected):
        client.predict(query, api_name="/search")
    results, _ = client.predict("a red circle", api_name="/search")
    assert captions(results)[0].startswith("red circle")


def test_a_2000_character_query_says_it_was_cut(client):
    results, details = client.predict("a green triangle " * 120, api_name="/search")
    assert results and "only its beginning" in details


def test_top_k_larger_than_my_gallery(client, tmp_path):
    client.predict([handle_file(str(scene_file(tmp_path, "red", "square", 21)))], api_name="/add_images")
    results, details = client.predict("a red square", 40, "mine", api_name="/search")
    assert len(results) == 1 and "holds 1 image" in details


def test_a_bad_zip_gets_our_message(client, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("huge.png", b"\0" * (32 * 2**20))
    with pytest.raises(AppError, match="zip bomb"):
        client.predict([handle_file(str(bomb))], api_name="/add_images")
    notes = tmp_path / "notes.png"
    notes.write_bytes(io.BytesIO(b"meeting notes").getvalue())
    status, source = client.predict([handle_file(str(notes))], api_name="/add_images")
    assert "0 images in your gallery" in status and "notes.png (not an image)" in status and source == "examples"
