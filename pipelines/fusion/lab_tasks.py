"""The Fusion lab's bundled tasks: labelled (image, text, label) rows a visitor can train on at once.

Toy profile (images drawn by ``toyworld`` from held-out seeds):
    toy-match    "does the text match the image?": 20 scenes in pairs that swap descriptions, so each image is once
                 matched and once not, and so is each description: neither modality alone beats chance
    toy-colour   "colour of the shape named in the text": two shapes of different colours; the text names one
Default profile (the bundled photos, assets/examples/photos):
    photo-match  "does the caption match the photo?": each photo and its mirror image, with their caption and with
                 the caption of the photo they are paired with
    photo-topic  "is the question's answer yes?": each photo with one question it answers yes and one it answers no

Images are written once into the app's cache directory (``folder()``); rows name them as "<task>/<file>", which
``resolve`` turns back into a path. No other name resolves: a row cannot reach any other file of the server.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

import toyworld

from ..core import runtime

PHOTOS = Path(__file__).resolve().parents[2] / "assets" / "examples" / "photos"
MATCH, MISMATCH = "match", "no match"
TEMPLATES = (
    "{caption}",
    "a photo of {caption}",
    "a picture of {caption}",
    "an image of {caption}",
    "a drawing of {caption}",
)
SEED = toyworld.HELD_OUT_SEED + 7000  # scenes no toy model was trained on


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # what the task list shows
    profile: str  # the profile whose encoder it suits


TASKS = {
    task.name: task
    for task in (
        Task("toy-match", "Does the text match the image? (toy, 40 examples)", "toy"),
        Task("toy-colour", "Colour of the shape named in the text (toy, 40 examples)", "toy"),
        Task("photo-match", "Does the caption match the photo? (photos, 32 examples)", "default"),
        Task("photo-topic", "Is the answer to the question yes? (photos, 16 examples)", "default"),
    )
}


def tasks(profile: str) -> list[Task]:
    """The bundled tasks for ``profile``'s encoder."""
    return [task for task in TASKS.values() if task.profile == ("toy" if profile == "toy" else "default")]


def folder() -> Path:
    return Path(runtime.settings().cache_dir) / "fusion-lab"


def rows(name: str) -> list[list[str]]:
    """The task's rows [image name, text, label]; its images are written on first use."""
    if name not in TASKS:
        raise KeyError(f"Unknown task {name!r}; expected one of: {', '.join(TASKS)}")
    made = {
        "toy-match": _toy_match,
        "toy-colour": _toy_colour,
        "photo-match": _photo_match,
        "photo-topic": _photo_topic,
    }
    examples = made[name]()
    for file, image, _, _ in examples:
        _write(name, file, image)
    return [[f"{name}/{file}", text, label] for file, _, text, label in examples]


def resolve(name: str) -> Path | None:
    """The file a row's "<task>/<file>" names, if it is a bundled task's image that exists."""
    parts = PurePosixPath(str(name).strip()).parts
    if len(parts) != 2 or parts[0] not in TASKS or parts[1].startswith(".") or "\\" in parts[1]:
        return None
    path = folder() / parts[0] / parts[1]
    if not path.is_file():
        try:
            rows(parts[0])  # written on first use: a fresh cache directory, or rows typed without the task list
        except FileNotFoundError:  # the bundled photos are missing from this install
            return None
    return path if path.is_file() else None


def _write(task: str, file: str, image) -> None:
    path = folder() / task / file
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".png")
    with os.fdopen(handle, "wb") as out:
        (image() if callable(image) else image).save(out, format="PNG")
    os.replace(temporary, path)  # another request writing the same image meanwhile writes the same bytes


def _toy_match() -> list[tuple]:
    """10 blocks of two scenes A, B: (A, a, match), (A, b, no), (B, b, match), (B, a, no). Ten descriptions each
    appear in two blocks, worded differently, so every exact text is used in one block only: examples sharing an
    image or a text stay in one block, and a held-out block's descriptions were seen (on other images) in training."""
    rng = np.random.default_rng(SEED)
    combos = [(color, shape) for color in toyworld.COLORS for shape in toyworld.SHAPES]
    chosen = [combos[i] for i in rng.permutation(len(combos))[:10]]
    examples = []
    for block in range(10):
        pair = [chosen[block], chosen[(block + 1) % len(chosen)]]
        scenes = [toyworld.render([combo], rng).image for combo in pair]
        texts = [
            TEMPLATES[(block + 2 * side) % len(TEMPLATES)].format(caption=toyworld.caption_for(*combo))
            for side, combo in enumerate(pair)
        ]
        for side in range(2):
            file = f"{2 * block + side:02d}.png"
            examples.append((file, scenes[side], texts[side], MATCH))
            examples.append((file, scenes[side], texts[1 - side], MISMATCH))
    return examples


def _toy_colour() -> list[tuple]:
    """20 scenes of two shapes (different shapes, different colours among red, green, blue), each asked twice."""
    rng = np.random.default_rng(SEED + 1)
    colours = ("red", "green", "blue")
    examples = []
    for index in range(20):
        pair_colours = [str(c) for c in rng.choice(colours, size=2, replace=False)]
        pair_shapes = [str(s) for s in rng.choice(toyworld.SHAPES, size=2, replace=False)]
        image = toyworld.render(list(zip(pair_colours, pair_shapes)), rng).image
        for colour, shape in zip(pair_colours, pair_shapes):
            examples.append((f"{index:02d}.png", image, f"the {shape}", colour))
    return examples


# The photos, their captions, and the photo each is paired with in photo-match (they swap captions).
PHOTO_CAPTIONS = {
    "cat": "a cat",
    "horse": "a horse",
    "rocket": "a rocket",
    "astronaut": "an astronaut",
    "coffee": "a cup of coffee",
    "coins": "a pile of coins",
    "motorcycle": "a motorcycle",
    "hubble": "a galaxy in space",
}
PHOTO_PAIRS = (("cat", "horse"), ("rocket", "astronaut"), ("coffee", "coins"), ("motorcycle", "hubble"))
# photo-topic: for each photo, a question it answers yes and one it answers no.
PHOTO_QUESTIONS = {
    "cat": ("is it an animal?", "is it a vehicle?"),
    "horse": ("is it an animal?", "is it about space?"),
    "rocket": ("is it about space?", "is it an animal?"),
    "astronaut": ("is it about space?", "is it something to drink?"),
    "coffee": ("is it something to drink?", "is it an animal?"),
    "coins": ("is it money?", "is it about space?"),
    "motorcycle": ("is it a vehicle?", "is it money?"),
    "hubble": ("is it about space?", "is it a vehicle?"),
}


def _photo(stem: str):
    matches = sorted(PHOTOS.glob(f"{stem}.*"))
    if not matches:
        raise FileNotFoundError(f"the bundled photo {stem!r} is missing from {PHOTOS.name}")

    def opened() -> Image.Image:
        with Image.open(matches[0]) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((512, 512))
            return image

    return opened


def _photo_match() -> list[tuple]:
    examples = []
    for first, second in PHOTO_PAIRS:
        for mirrored in (False, True):
            template = "a photo of {}" if mirrored else "{}"
            for stem, other in ((first, second), (second, first)):
                image = _photo(stem)
                if mirrored:
                    image = (lambda opened: lambda: ImageOps.mirror(opened()))(image)
                file = f"{stem}{'-mirrored' if mirrored else ''}.png"
                examples.append((file, image, template.format(PHOTO_CAPTIONS[stem]), MATCH))
                examples.append((file, image, template.format(PHOTO_CAPTIONS[other]), MISMATCH))
    return examples


def _photo_topic() -> list[tuple]:
    examples = []
    for stem, (yes, no) in PHOTO_QUESTIONS.items():
        image = _photo(stem)
        examples += [(f"{stem}.png", image, yes, "yes"), (f"{stem}.png", image, no, "no")]
    return examples
