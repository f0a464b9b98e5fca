"""The Studio: one image and one spoken question in, every model once, each part as it is ready (toy profile)."""

from __future__ import annotations

import numpy as np
import pytest

import pipelines
import toyworld
from pipelines import fusion, studio
from pipelines.fusion import early_fusion, late_fusion, similarity
from pipelines.studio import Unavailable
from tests.conftest import ROOT

QUESTION = "what color is the shape"
BUNDLED = {p.stem.replace("_", " ") for p in (ROOT / "assets/examples/toy").glob("*.png")}


@pytest.fixture(scope="module")
def scenes():
    """Fresh scenes whose colour and shape the bundled gallery also shows, so its top hit can match."""
    fresh = toyworld.scenes(200, start_seed=toyworld.HELD_OUT_SEED + 9000)
    return [s for s in fresh if f"{s.color} {s.shape}" in BUNDLED][:3]


@pytest.fixture(scope="module")
def question(tmp_path_factory):
    from tests.conftest import _speak

    return _speak(QUESTION, tmp_path_factory.mktemp("speech") / "question.wav")


def run(*args, **kwargs) -> dict:
    parts = list(studio.run(*args, **kwargs))
    assert [name for name, _ in parts] == list(studio.PARTS)  # every part, in order, whatever the inputs
    return dict(parts)


def test_one_image_and_one_spoken_question_every_part_answers(scenes, question):
    for scene in scenes:
        parts = run(scene.image, question)
        assert {"color", "shape"} <= set(parts["words"].text.lower().strip("?").split())
        assert parts["words"].spoken and parts["words"].transcript.model == "whisper-tiny.en-embedded"
        assert parts["answer"].answer.text == scene.color
        assert scene.shape in parts["caption"][0].text and scene.color in parts["caption"][0].text
        assert parts["search_image"][0].label == f"{scene.color} {scene.shape}"
        assert len(parts["fusion"].early) == len(parts["fusion"].late) == studio.StudioOptions().top_k


def test_labels_come_from_the_alternatives_in_the_words(scenes):
    scene = scenes[0]
    other = next(c for c in toyworld.COLORS if c != scene.color)
    parts = run(scene.image, text=f"is it a {other} {scene.shape} or a {scene.color} {scene.shape}?")
    assert parts["labels"].best == f"{scene.color} {scene.shape}"
    assert studio.alternatives("a cat, a dog or a rocket") == ["cat", "dog", "rocket"]
    assert studio.alternatives(QUESTION) == []  # no alternatives: the labels option is used instead


def test_every_model_runs_once_and_the_image_and_words_are_embedded_once(scenes, question, monkeypatch):
    scene = scenes[0]
    run(scene.image, question)  # loads the models and embeds the gallery
    space = fusion.shared_space()
    encoded = {"image": [], "text": []}
    embed_images, embed_texts = space.embed_images, space.embed_texts
    monkeypatch.setattr(
        space, "embed_images", lambda images: encoded["image"].append(len(images)) or embed_images(images)
    )
    monkeypatch.setattr(space, "embed_texts", lambda texts: encoded["text"].append(list(texts)) or embed_texts(texts))
    forwards = {}
    for task in ("transcribe", "caption", "ask"):
        model = pipelines.load(task)
        forward = model._forward
        monkeypatch.setattr(
            model,
            "_forward",
            lambda batch, options, task=task, forward=forward: (
                forwards.__setitem__(task, forwards.get(task, 0) + 1) or forward(batch, options)
            ),
        )

    parts = run(scene.image, question)

    assert forwards == {"transcribe": 1, "caption": 1, "ask": 1}
    heat = parts["answer"].heatmap
    assert encoded["image"] == [1, heat.crops]  # the picture once (shared by 5 parts), then the heatmap's crops
    words = parts["words"].text
    texts = [t for batch in encoded["text"] for t in batch]
    assert texts.count(words) == 1  # the words once, shared by the search, the fusion and the labels
    assert heat.text in texts and all(c.text in texts for c in parts["caption"])


def test_the_weight_slider_moves_both_rankings_from_kept_embeddings(scenes):
    scene = scenes[0]
    parts = run(scene.image, text="blue")
    vectors = parts["vectors"]
    space = fusion.shared_space()
    before = sum(space.calls.values())
    image_only, words_only = (
        studio.fuse(vectors.image, vectors.text, 0.0, 4),
        studio.fuse(vectors.image, vectors.text, 1.0, 4),
    )
    assert sum(space.calls.values()) == before  # re-weighting encodes nothing
    assert image_only.early[0].label == image_only.late[0].label == parts["search_image"][0].label
    assert words_only.early[0].label.startswith("blue") and words_only.late[0].label.startswith("blue")


def test_early_and_late_fusion_differ_where_they_should():
    """Image-image cosines spread wide (0.3 to 0.9) and text-image ones narrow (0.2 to 0.4), as with real CLIP.
    Early fusion sums raw cosines, so the image decides; late fusion rescales each modality first, so the item
    that best fits the words can win."""
    image, words = np.eye(3, dtype=np.float32)[0], np.eye(3, dtype=np.float32)[1]
    cosines = {
        "like the image": (0.9, 0.25),
        "fits the words": (0.5, 0.40),
        "between": (0.6, 0.3),
        "neither": (0.3, 0.2),
    }
    names = list(cosines)
    gallery = np.array([[a, b, np.sqrt(1 - a * a - b * b)] for a, b in cosines.values()], dtype=np.float32)

    early = similarity(early_fusion([image, words], [0.5, 0.5]), gallery)[0]
    late = late_fusion([similarity(image, gallery)[0], similarity(words, gallery)[0]], [0.5, 0.5])

    assert names[int(np.argmax(early))] == "like the image"
    assert names[int(np.argmax(late))] == "fits the words"


@pytest.mark.parametrize(
    "inputs,runs,reason",
    [
        (dict(audio=None, text=None), {"labels", "caption", "search_image"}, "No speech or text was given"),
        (dict(image=None), {"words", "search_text"}, "No image was given"),
        (dict(image=None, audio=None, text=None), set(), "No"),
    ],
    ids=["image-only", "speech-only", "nothing"],
)
def test_parts_that_can_run_do_and_the_others_say_why_not(scenes, question, inputs, runs, reason):
    given = {"image": scenes[0].image, "audio": question, "text": None, **inputs}
    parts = run(given["image"], given["audio"], given["text"])
    for name in set(studio.PARTS) - {"vectors"}:
        if name in runs:
            assert not isinstance(parts[name], Unavailable), (name, parts[name])
        else:
            assert isinstance(parts[name], Unavailable) and reason in parts[name].reason, (name, parts[name])


def test_silent_speech_says_no_speech_and_the_image_parts_still_run(scenes, tmp_path):
    import soundfile

    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(32000, np.float32), 16000)
    parts = run(scenes[0].image, silence)
    assert isinstance(parts["words"], Unavailable) and "No speech was found" in parts["words"].reason
    assert isinstance(parts["answer"], Unavailable) and "No speech was found" in parts["answer"].reason
    assert scenes[0].shape in parts["caption"][0].text
