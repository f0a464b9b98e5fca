"""Search with the toy CLIP: text, image and composed queries, negatives, vectors, zero-shot, the embedding cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import pipelines
import toyworld
from pipelines.core import limits
from pipelines.core.budget import Deadline
from pipelines.core.errors import InputError
from pipelines.search.classify import classifier
from pipelines.search.gallery import Gallery
from pipelines.search.retrieval import Query

LABELS = [f"{c} {s}" for c in toyworld.COLORS for s in toyworld.SHAPES]


def scene_folder(folder, seeds) -> list[toyworld.Scene]:
    """Scenes saved as PNG files named by seed; returns them in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    scenes = []
    for seed in seeds:
        scene = toyworld.scene(seed)
        scene.image.save(folder / f"{seed}.png")
        scenes.append(scene)
    return scenes


@pytest.fixture
def scene_gallery(cache_dir, tmp_path):
    """60 fresh toy scenes as a folder gallery; returns (gallery, {path: scene})."""
    seeds = range(toyworld.HELD_OUT_SEED + 7000, toyworld.HELD_OUT_SEED + 7060)
    scenes = scene_folder(tmp_path / "scenes", seeds)
    gallery = Gallery.from_folder(tmp_path / "scenes")
    by_path = {str(tmp_path / "scenes" / f"{seed}.png"): scene for seed, scene in zip(seeds, scenes)}
    return gallery, by_path


def same(scene_a: toyworld.Scene, scene_b: toyworld.Scene) -> bool:
    return (scene_a.color, scene_a.shape) == (scene_b.color, scene_b.shape)


def test_text_queries_retrieve_the_matching_scene_first(scene_gallery):
    gallery, by_path = scene_gallery
    scenes = list(by_path.values())
    results = pipelines.load("search")([s.caption for s in scenes], top_k=3, gallery=gallery)
    assert np.mean([same(by_path[r.hits[0].path], s) for r, s in zip(results, scenes)]) >= 0.9


def test_image_query_finds_the_same_colour_and_shape(scene_gallery):
    gallery, by_path = scene_gallery
    queries = toyworld.scenes(30, start_seed=toyworld.HELD_OUT_SEED + 8000)  # not in the gallery
    results = pipelines.load("search")([Query(image=q.image) for q in queries], top_k=1, gallery=gallery)
    assert np.mean([same(by_path[r.hits[0].path], q) for r, q in zip(results, queries)]) >= 0.9


def mixed_gallery(folder, wanted: list[tuple[str, str]], seed: int = 3) -> Gallery:
    """Scenes with the given (colour, shape) pairs, files named like 'blue_circle_4.png'."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i, pair in enumerate(wanted):
        toyworld.render([pair], rng).image.save(folder / f"{pair[0]}_{pair[1]}_{i}.png")
    return Gallery.from_folder(folder)


def test_composed_query_moves_a_blue_circle_up(cache_dir, tmp_path):
    wanted = [("red", "circle")] * 4 + [("blue", "circle")] * 3 + [("blue", "square")] * 3 + [("green", "circle")] * 3
    gallery = mixed_gallery(tmp_path / "mix", wanted)
    red_circle = toyworld.render([("red", "circle")], np.random.default_rng(99)).image
    searcher = pipelines.load("search")

    def rank_of_first_blue_circle(query) -> int:
        [result] = searcher([query], top_k=len(wanted), gallery=gallery)
        return next(i for i, hit in enumerate(result.hits) if hit.label.startswith("blue circle"))

    alone = rank_of_first_blue_circle(Query(image=red_circle))
    composed = rank_of_first_blue_circle(Query(image=red_circle, text="blue", image_weight=0.5))
    assert alone >= 4  # the red circles come first for the image alone
    assert composed == 0
    as_array = rank_of_first_blue_circle(Query(image=np.asarray(red_circle), text="blue", image_weight=0.5))
    assert as_array == 0  # an image given as an array composes the same way


def test_negative_text_pushes_that_colour_down(cache_dir, tmp_path):
    colours = ("red", "blue", "green", "yellow")
    gallery = mixed_gallery(tmp_path / "mix", [(c, "circle") for c in colours] * 3 + [("red", "square")] * 3)
    searcher = pipelines.load("search")
    [plain] = searcher(["a circle"], top_k=12, gallery=gallery)
    [without_red] = searcher([Query(text="a circle", negative="red", negative_weight=0.5)], top_k=9, gallery=gallery)
    assert sum(h.label.startswith("red circle") for h in plain.hits) == 3
    assert all(h.label.split()[1] == "circle" and not h.label.startswith("red") for h in without_red.hits)


def test_a_vector_query_needs_no_image_encoding(scene_gallery):
    gallery, _ = scene_gallery
    searcher = pipelines.load("search")
    image = toyworld.scene(toyworld.HELD_OUT_SEED + 8100).image
    [by_image] = searcher([Query(image=image)], top_k=5, gallery=gallery)
    vector = searcher.space.embed_images([image])[0]
    before = searcher.space.calls["image"]
    [by_vector] = searcher([Query(vector=vector)], top_k=5, gallery=gallery)
    assert searcher.space.calls["image"] == before
    assert [h.path for h in by_vector.hits] == [h.path for h in by_image.hits]


def test_zero_shot_labels_classify_toy_scenes(fresh_scenes):
    results = classifier()([s.image for s in fresh_scenes], ", ".join(LABELS), "a photo of a {}")
    assert np.mean([r.best == f"{s.color} {s.shape}" for r, s in zip(results, fresh_scenes)]) >= 0.9
    assert all(math.isclose(sum(r.scores.values()), 1.0, rel_tol=1e-4) for r in results)


def test_zero_shot_from_embeddings_matches_and_encodes_no_image(fresh_scenes):
    space = pipelines.load("search").space
    images = [s.image for s in fresh_scenes[:8]]
    from_images = classifier()(images, LABELS)
    vectors = space.embed_images(images)
    before = space.calls["image"]
    from_vectors = classifier().classify_vectors(vectors, LABELS)
    assert space.calls["image"] == before
    assert [r.best for r in from_vectors] == [r.best for r in from_images]


@pytest.mark.parametrize(
    "labels,template,message",
    [
        ("cat", "a photo of a {}", "at least two labels"),
        (" , ,", "a photo of a {}", "at least two labels"),
        ("cat, dog", "a photo of a cat", "exactly once"),
        ("cat, dog", "{} and {}", "exactly once"),
        ("cat, " + "dog" * 100_000, "a photo of a {}", "The labels is too long: 300,005 characters"),
        ("cat, dog", "{}" + "x" * 100_000, "The prompt template is too long: 100,002 characters"),
    ],
)
def test_bad_labels_or_template_are_refused(labels, template, message, fresh_scenes):
    with pytest.raises(InputError, match=message):
        classifier()([fresh_scenes[0].image], labels, template)


def test_re_indexing_and_restarting_cost_no_encoder_calls(cache_dir, tmp_path):
    scene_folder(tmp_path / "scenes", range(toyworld.HELD_OUT_SEED + 7200, toyworld.HELD_OUT_SEED + 7240))
    space = pipelines.load("search").space
    before = space.calls["image"]
    first = Gallery.from_folder(tmp_path / "scenes").prepare(space)
    assert (first.encoded, first.cached) == (40, 0)
    assert space.calls["image"] - before == math.ceil(40 / 32)
    again = Gallery.from_folder(tmp_path / "scenes").prepare(space)  # a new process would do exactly this
    assert (again.encoded, again.cached) == (0, 40)
    uploads = Gallery("my images")
    report = uploads.add_uploads(sorted((tmp_path / "scenes").glob("*.png"))[:5] * 2)  # each image twice
    assert (report.added, report.duplicates) == (5, 5)
    assert uploads.prepare(space).encoded == 5  # a visitor's uploads have a cache of their own, never the shared one
    assert Gallery("my images", uploads.items, uploads.owner).prepare(space).cached == 5  # ... kept on disk
    assert space.calls["image"] - before == math.ceil(40 / 32) + 1


def test_cache_keys_include_the_model_precision(cache_dir, tmp_path):
    scene_folder(tmp_path / "scenes", range(toyworld.HELD_OUT_SEED + 7300, toyworld.HELD_OUT_SEED + 7303))
    full = pipelines.load("search", dtype="float32").space
    half = pipelines.load("search", dtype="float16").space
    assert full.key != half.key
    Gallery.from_folder(tmp_path / "scenes").prepare(full)
    assert Gallery.from_folder(tmp_path / "scenes").prepare(half).encoded == 3


def test_a_long_query_is_cut_to_the_context_and_says_so():
    query = "a red circle and a blue square " * 70
    assert len(query) > 2000
    read = " ".join(query.split()[:22])  # 24 tokens with the start and end tokens
    [result, prefix] = pipelines.load("search")([query, read], top_k=5)
    assert [h.path for h in result.hits] == [h.path for h in prefix.hits]
    assert any("only its beginning" in n and "24 tokens" in n for n in result.notices)
    [short] = pipelines.load("search")(["a red circle"], top_k=1)
    assert short.notices == ()


@pytest.mark.parametrize(
    "query,message",
    [
        ("", "empty"),
        ("    \t ", "empty"),
        ("🔴🟦✨", "no letters or digits"),
        ("?!", "no letters or digits"),
    ],
)
def test_empty_or_wordless_queries_are_refused(query, message):
    with pytest.raises(InputError, match=message):
        pipelines.load("search")([query])


@pytest.mark.parametrize("top_k", [0, 101, 2.5, True])
def test_top_k_out_of_range_is_refused(top_k):
    with pytest.raises(InputError, match="top_k"):
        pipelines.load("search")(["a red circle"], top_k=top_k)


def test_top_k_larger_than_the_gallery_shows_all_with_a_notice(cache_dir, tmp_path):
    scene_folder(tmp_path / "three", range(toyworld.HELD_OUT_SEED + 7400, toyworld.HELD_OUT_SEED + 7403))
    [result] = pipelines.load("search")(["a red circle"], top_k=50, gallery=Gallery.from_folder(tmp_path / "three"))
    assert len(result.hits) == 3
    assert any("holds 3 images" in n for n in result.notices)


def test_an_empty_gallery_says_what_to_do():
    with pytest.raises(InputError, match="empty.*Upload images"):
        pipelines.load("search")(["a red circle"], gallery=Gallery("my images"))


def test_an_undecodable_image_leaves_the_gallery_with_a_reason(cache_dir, tmp_path):
    scene_folder(tmp_path / "scenes", [toyworld.HELD_OUT_SEED + 7500])
    good = (tmp_path / "scenes").iterdir().__next__().read_bytes()
    (tmp_path / "scenes" / "cut.png").write_bytes(good[: len(good) // 2])
    gallery = Gallery.from_folder(tmp_path / "scenes")
    report = gallery.prepare(pipelines.load("search").space)
    assert len(gallery) == 1 and report.encoded == 1
    assert any(p.startswith("cut (") and "truncated or damaged" in p for p in report.problems)


def test_a_gallery_whose_images_all_fail_to_decode_says_it_is_empty(cache_dir, tmp_path):
    scene_folder(tmp_path / "scenes", [toyworld.HELD_OUT_SEED + 7510])
    only = next((tmp_path / "scenes").iterdir())
    only.write_bytes(only.read_bytes()[:100])
    with pytest.raises(InputError, match="empty.*Upload images"):
        pipelines.load("search")(["a red circle"], gallery=Gallery.from_folder(tmp_path / "scenes"))


def test_an_image_dropped_for_one_model_is_dropped_for_every_model(cache_dir, tmp_path):
    # one model's index counts positions in the gallery's list: when another model drops an image that no longer
    # decodes, the first must not keep answering with the old positions
    scene_folder(tmp_path / "scenes", [toyworld.HELD_OUT_SEED + 7520, toyworld.HELD_OUT_SEED + 7521])
    gallery = Gallery.from_folder(tmp_path / "scenes")
    fp32, fp16 = pipelines.load("search"), pipelines.load("search", dtype="float16")  # one index each
    gallery.prepare(fp32.space)
    damaged = Path(gallery.items[0].path)
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert len(gallery.prepare(fp16.space).problems) == 1
    for searcher in (fp32, fp16):
        [result] = searcher(["a red circle"], top_k=5, gallery=gallery)
        assert [hit.path for hit in result.hits] == [gallery.items[0].path]


@pytest.mark.parametrize(
    "name,hub_id",
    [
        ("ViT-B-32:laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
        ("hf-hub:timm/ViT-B-16-SigLIP", "timm/ViT-B-16-SigLIP"),
        ("clip-vit-b-16", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"),
    ],
)
def test_search_models_by_open_clip_name_tag_or_hub_id(name, hub_id):
    spec = pipelines.registry.resolve("search", name, "toy")
    assert (spec.source, spec.backend) == (hub_id, "open_clip")


def test_an_unknown_open_clip_tag_lists_the_known_ones():
    with pytest.raises(pipelines.UnknownModelError, match="laion2b_s34b_b79k"):
        pipelines.registry.resolve("search", "ViT-B-32:no_such_tag", "toy")


def test_a_hub_search_model_offline_says_which_and_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(pipelines.ModelLoadError, match="laion/CLIP-ViT-B-32-laion2B-s34B-b79K.*pipelines.download"):
        pipelines.load("search", "ViT-B-32:laion2b_s34b_b79k")


# ------------------------------------------------------------------ the time budget of encoding a gallery
# (ENCODE_BATCH = 32 images per encoder batch: the first batch always runs, a spent budget stops the next)

ENCODE_BATCH = 32


def test_searching_with_another_model_encodes_within_the_time_limit_and_says_how_much_was_searched(cache_dir, tmp_path):
    scenes = scene_folder(tmp_path / "scenes", range(toyworld.HELD_OUT_SEED + 7600, toyworld.HELD_OUT_SEED + 7640))
    gallery = Gallery.from_folder(tmp_path / "scenes")
    gallery.prepare(pipelines.load("search").space)  # the gallery was filled with one model ...
    other = pipelines.load("search", dtype="float16")  # ... and is searched with another
    before = other.space.calls["image"]
    [result] = other(["a red circle"], top_k=40, gallery=gallery, encode_seconds=0)
    assert other.space.calls["image"] - before == 1  # one batch, then the budget stopped the encoding
    assert len(result.hits) == ENCODE_BATCH and len(gallery) == len(scenes)  # the rest stay, for later
    [notice] = result.notices
    assert notice.startswith(f"Searched {ENCODE_BATCH} of {len(scenes)} images.")
    assert "time limit per request is 0 s" in notice and "encoded on the next search" in notice
    [again] = other(["a red circle"], top_k=40, gallery=gallery, encode_seconds=0)  # the next request
    assert len(again.hits) == len(scenes) and again.notices == ()
    assert other.space.calls["image"] - before == 2  # only the images left were encoded


def test_a_search_on_the_tab_stops_encoding_at_the_request_time_limit(cache_dir, tmp_path, monkeypatch):
    from demos import search as search_tab

    scene_folder(tmp_path / "scenes", range(toyworld.HELD_OUT_SEED + 7700, toyworld.HELD_OUT_SEED + 7740))
    mine = Gallery("my images")
    mine.add_uploads(sorted((tmp_path / "scenes").glob("*.png")))  # stored, not yet encoded with this model
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, "0.001")
    shown, details = search_tab.search("a red circle", 40, "mine", "", None, mine)
    assert len(shown) == ENCODE_BATCH and f"Searched {ENCODE_BATCH} of 40 images" in details
    assert "MM_MAX_REQUEST_SECONDS" in details and "encoded on the next search" in details


def test_images_the_time_limit_left_unencoded_stay_and_are_encoded_by_the_next_call(cache_dir, tmp_path):
    scene_folder(tmp_path / "scenes", range(toyworld.HELD_OUT_SEED + 7800, toyworld.HELD_OUT_SEED + 7840))
    mine = Gallery("my images")
    mine.add_uploads(sorted((tmp_path / "scenes").glob("*.png")))
    space = pipelines.load("search").space
    stopped = mine.prepare(space, deadline=Deadline(0))
    assert len(mine) == 40 and (stopped.encoded, stopped.left) == (ENCODE_BATCH, 40 - ENCODE_BATCH)
    assert not stopped.problems  # not reported as images that failed, nor dropped
    summary = stopped.summary()
    assert summary.count("time limit per request") == 1 and "8 of this gallery's images are not encoded" in summary
    rest = mine.prepare(space, deadline=Deadline(60))
    assert (rest.encoded, rest.cached, rest.left, rest.stopped) == (8, ENCODE_BATCH, 0, "")
    [result] = pipelines.load("search")(["a red circle"], top_k=40, gallery=mine)
    assert len(result.hits) == 40


def test_a_search_takes_the_request_deadline_like_every_pipeline(cache_dir):
    [result] = pipelines.load("search")([Query(text="a red circle")], deadline=60)
    assert result.hits and result.hits[0].label == "red circle"
