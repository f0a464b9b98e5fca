"""The fusion operators, on toy CLIP embeddings where the right answer is known."""

import numpy as np
import pytest

import toyworld
from pipelines import fusion
from pipelines.core.errors import InputError

SEED = toyworld.HELD_OUT_SEED + 9000


@pytest.fixture(scope="module")
def space():
    return fusion.shared_space()


def test_embeddings_are_unit_vectors_one_per_input(space):
    images = space.embed_images([toyworld.scene(SEED + i).image for i in range(3)])
    texts = space.embed_texts(["a red circle", "a blue square"])
    assert images.shape[0] == 3 and texts.shape[0] == 2 and images.shape[1] == texts.shape[1]
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-4)


def test_empty_text_is_refused(space):
    with pytest.raises(InputError, match="non-empty text"):
        space.embed_texts(["  "])


def test_early_fusion_moves_a_red_circle_query_towards_blue(space):
    rng = np.random.default_rng(SEED)
    red_circle = space.embed_images([toyworld.render([("red", "circle")], rng).image])
    blue = space.embed_texts(["blue"])
    labels = ["red circle", "blue circle", "blue square", "red square"]
    candidates = space.embed_images([toyworld.render([tuple(label.split())], rng).image for label in labels])
    image_only = fusion.similarity(red_circle, candidates)[0]
    composed = fusion.similarity(fusion.early_fusion([red_circle, blue], [0.5, 0.5]), candidates)[0]
    assert labels[int(image_only.argmax())] == "red circle"
    assert labels[int(composed.argmax())] == "blue circle"


def test_early_fusion_is_unit_length_and_checks_its_weights():
    a, b = np.eye(4, dtype=np.float32)[:1], np.eye(4, dtype=np.float32)[1:2]
    fused = fusion.early_fusion([a, b], [0.25, 0.75])
    assert np.isclose(np.linalg.norm(fused), 1) and fused[0, 1] > fused[0, 0] > 0
    with pytest.raises(InputError, match="one weight per embedding"):
        fusion.early_fusion([a, b], [1.0])
    with pytest.raises(InputError, match="non-zero weight"):
        fusion.early_fusion([a, a], [1.0, -1.0])


def test_late_fusion_rescales_each_source_before_weighting():
    logits = np.array([10.0, 20.0, 30.0])  # source 1 prefers candidate 2, on a large scale
    cosines = np.array([0.30, 0.20, 0.10])  # source 2 prefers candidate 0, on a small scale
    assert fusion.late_fusion([logits, cosines], [0.5, 0.5]).tolist() == [0.5, 0.5, 0.5]
    assert fusion.late_fusion([logits, cosines], [0.2, 0.8]).argmax() == 0
    assert fusion.late_fusion([logits, cosines], [0.5, 0.5], rescale=False).argmax() == 2
    with pytest.raises(InputError, match="same candidates"):
        fusion.late_fusion([logits, cosines[:2]], [0.5, 0.5])


# ------------------------------------------------------------------------------- half precision


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def fresh_space(dtype="float32") -> fusion.ClipSpace:
    """A toy CLIP space of its own (not the cached one other tests share), loaded through the real loader."""
    import torch

    from pipelines.core import registry, runtime

    spec = registry.resolve("search", None, runtime.settings().profile)
    return fusion.ClipSpace.load(spec, torch.device("cpu"), getattr(torch, dtype))


def test_fp16_embeddings_agree_with_fp32(space):
    half = fresh_space("float16")
    images = [toyworld.scene(SEED + 300 + i).image for i in range(4)]
    halves = half.embed_images(images)
    assert halves.dtype == np.float32 and halves.shape == (4, space.embed_images(images[:1]).shape[1])
    assert np.all(cosines(halves, space.embed_images(images)) > 0.99)
    assert "float16" in half.key
