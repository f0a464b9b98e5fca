"""The note under a toy model's answer about a photo: which images count as toy scenes, which models as toys."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import toyworld
from demos import examples
from demos.toy_note import TOY_NOTE, is_toy_choice, looks_like_toy_scene, toy_note
from pipelines.core import registry


@pytest.mark.parametrize("path", examples.photos(), ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_bundled_photo_counts_as_a_photo(path):
    assert not looks_like_toy_scene(path)


def test_every_bundled_toy_scene_counts_as_a_toy_scene():
    paths = [p for p in examples.images() if "/toy/" in p] + [
        str(p) for p in (examples.EXAMPLES / "toy").glob("*_and_*.png")
    ]
    assert len(paths) >= 10
    assert [p for p in paths if not looks_like_toy_scene(p)] == []


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_fresh_toy_scenes_count_as_toy_scenes_as_uploaded_enlarged_or_compressed():
    missed = []
    for seed in range(toyworld.HELD_OUT_SEED + 50_000, toyworld.HELD_OUT_SEED + 50_150):
        for scene in (toyworld.scene(seed), toyworld.two_shape_scene(seed)):
            enlarged = scene.image.resize((480, 480), Image.Resampling.BICUBIC)
            for version in (scene.image, enlarged, _jpeg(enlarged)):
                if not looks_like_toy_scene(version):
                    missed.append((seed, scene.caption))
    assert missed == []


def test_drawings_outside_the_palette_and_unreadable_files_are_not_toy_scenes(tmp_path):
    dark = Image.new("RGB", (64, 64), (30, 30, 30))  # a dark background: never a toy scene's
    assert not looks_like_toy_scene(dark)
    grey_shape = Image.new("RGB", (64, 64), (240, 240, 240))
    grey_shape.paste((120, 120, 120), (10, 10, 50, 50))  # grey is not one of the six colours
    assert not looks_like_toy_scene(grey_shape)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert not looks_like_toy_scene(str(tmp_path / "broken.png"))


def test_the_registry_s_toy_entries_are_toys_and_the_hub_models_are_not():
    for task in ("caption", "ask"):
        for name in registry.available_models(task):
            assert is_toy_choice(task, name) == name.startswith("toy-"), (task, name)
    assert is_toy_choice("caption", None)  # the tests run the toy profile: its own model is a toy
    assert not is_toy_choice("caption", "no-such-model")
    assert is_toy_choice("ask", str(registry.PROJECT_ROOT / "assets/models/toy/vilt"))  # typed as a directory


def test_the_note_shows_for_a_toy_model_on_a_photo_only():
    photo = examples.photos()[0]
    scene = toyworld.scene(toyworld.HELD_OUT_SEED + 50_500).image
    assert toy_note(photo, "ask", "toy-blip-vqa") == TOY_NOTE
    assert toy_note(photo, "caption", None) == TOY_NOTE  # the toy profile's own captioner
    assert toy_note(scene, "ask", "toy-blip-vqa") == ""
    assert toy_note(photo, "ask", "blip-vqa-base") == ""  # a real model: no note
    assert toy_note(None, "ask", "toy-vilt") == ""
    assert toy_note(b"not an image at all", "ask", "toy-vilt") == ""  # its refusal says why; no note on top


def test_the_studio_says_its_toy_answers_about_a_photo_are_guesses():
    from demos import studio

    photo = next(p for p in examples.photos() if p.endswith("astronaut.jpg"))
    *_, notes, _ = list(studio.run(photo, None, "is it a cat or a dog?"))[-1]
    assert notes.startswith(TOY_NOTE)
    *_, notes, _ = list(studio.run(examples.toy_scenes()[0], None, "what color is the shape?"))[-1]
    assert TOY_NOTE not in notes
    assert "toy model that knows only coloured shapes" in TOY_NOTE and "default profile" in TOY_NOTE
