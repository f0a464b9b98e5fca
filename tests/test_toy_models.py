"""The toy checkpoints, loaded through the normal loader, answer correctly on scenes they never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pipelines
import toyworld
from pipelines import fusion
from pipelines.core import limits


@pytest.fixture(autouse=True)
def every_scene_in_one_call(monkeypatch):
    """These checks send all the held-out scenes in one call, as an offline script may: with the per-request
    count limit (which the pipelines enforce) raised, as such a script would raise it."""
    monkeypatch.setenv(limits.IMAGES_ENV, "1000")


COLOR_SHAPE_LABELS = [toyworld.caption_for(c, s) for c in toyworld.COLORS for s in toyworld.SHAPES]


def names_the_scene(text: str, scene: toyworld.Scene) -> bool:
    return scene.color in text.split() and scene.shape in text.split()


def accuracy(hits) -> float:
    hits = list(hits)
    return sum(hits) / len(hits)


@pytest.mark.parametrize("model", ["toy-blip", "toy-vit-gpt2"])
def test_captions_name_colour_and_shape(model, fresh_scenes):
    captions = pipelines.load("caption", model)([s.image for s in fresh_scenes])
    assert accuracy(names_the_scene(c.text, s) for c, s in zip(captions, fresh_scenes)) >= 0.9


def test_answers_to_colour_and_shape_questions(fresh_scenes):
    asker = pipelines.load("ask")
    pairs = [(s.image, q) for s in fresh_scenes for q in ("what color is the shape?", "what shape is it?")]
    truth = [a for s in fresh_scenes for a in (s.color, s.shape)]
    answers = asker(pairs)
    assert accuracy(a.text == t for a, t in zip(answers, truth)) >= 0.9


def test_text_search_finds_the_matching_scene_first(fresh_scenes):
    space = fusion.shared_space()
    images = space.embed_images([s.image for s in fresh_scenes])
    queries = space.embed_texts([s.caption for s in fresh_scenes])
    best = fusion.similarity(queries, images).argmax(axis=1)
    # top-1 is right when it shows the asked colour and shape (several scenes may share them)
    assert accuracy(fresh_scenes[b].caption == s.caption for b, s in zip(best, fresh_scenes)) >= 0.9


def test_zero_shot_labels_in_clip_space(fresh_scenes):
    space = fusion.shared_space()
    scores = fusion.similarity(
        space.embed_images([s.image for s in fresh_scenes]),
        space.embed_texts([f"a photo of {label}" for label in COLOR_SHAPE_LABELS]),
    )
    predicted = [COLOR_SHAPE_LABELS[i] for i in scores.argmax(axis=1)]
    assert accuracy(p == s.caption for p, s in zip(predicted, fresh_scenes)) >= 0.9


def test_search_pipeline_returns_the_bundled_toy_scene_first():
    [result] = pipelines.load("search")(["a red circle"], top_k=3)
    assert result.hits[0].label == "red circle"
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_every_tab_shares_one_clip_instance():
    assert fusion.shared_space() is pipelines.load("search").space


def test_conditional_caption_continues_the_prefix(fresh_scenes):
    [caption] = pipelines.load("caption", "toy-blip")([fresh_scenes[0].image], prefix="a photography of")
    assert caption.text.startswith("a photography of")


# Half precision: the dtype path a GPU user runs, exercised on the CPU with the toy models.
@pytest.mark.parametrize("task,model", [("caption", "toy-blip"), ("caption", "toy-vit-gpt2"), ("ask", "toy-blip-vqa")])
def test_fp16_generation_matches_fp32(task, model, fresh_scenes):
    scenes = fresh_scenes[:12]
    inputs = [s.image for s in scenes] if task == "caption" else [(s.image, "what color is the shape?") for s in scenes]
    full = pipelines.load(task, model, dtype="float32")(inputs)
    half_pipeline = pipelines.load(task, model, dtype="float16")
    assert next(half_pipeline.model.parameters()).dtype == torch.float16
    half = half_pipeline(inputs)
    assert accuracy(h.text == f.text for h, f in zip(half, full)) >= 0.9


def test_fp16_clip_embeddings_match_fp32(fresh_scenes):
    images = [s.image for s in fresh_scenes[:12]]
    full = pipelines.load("search", dtype="float32").space.embed_images(images)
    half = pipelines.load("search", dtype="float16").space
    assert next(half.model.parameters()).dtype == torch.float16
    assert np.allclose(half.embed_images(images), full, atol=0.05)
