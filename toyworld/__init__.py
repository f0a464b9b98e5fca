"""The shapes world: a deterministic generator of synthetic scenes with captions and Q&A.

Every toy checkpoint in ``assets/models/toy`` is trained on scenes from here, and the tests ask
those checkpoints about fresh scenes (other seeds) to check that answers are right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64  # pixels, square; the toy checkpoints are trained at this size

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (235, 210, 30),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle")

COLOR_QUESTIONS = ("what color is the shape?", "what color is it?", "which color is the object?")
SHAPE_QUESTIONS = ("what shape is it?", "what shape is in the picture?", "which shape is this?")


@dataclass(frozen=True)
class Shape:
    color: str
    shape: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    shapes: tuple[Shape, ...]
    caption: str
    qa: tuple[tuple[str, str], ...] = field(default=())

    @property
    def color(self) -> str:
        return self.shapes[0].color

    @property
    def shape(self) -> str:
        return self.shapes[0].shape


def caption_for(color: str, shape: str) -> str:
    article = "an" if color[0] in "aeiou" else "a"
    return f"{article} {color} {shape}"


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A pale tinted background, sometimes lightly textured with noise or stripes."""
    tint = rng.uniform(200, 255, size=3)
    pixels = np.broadcast_to(tint, (size, size, 3)).copy()
    texture = rng.integers(3)
    if texture == 1:
        pixels += rng.normal(0, 8, size=pixels.shape)
    elif texture == 2:
        period = rng.integers(4, 12)
        stripes = (np.arange(size) // period % 2)[:, None, None] * rng.uniform(5, 15)
        pixels -= stripes if rng.random() < 0.5 else stripes.transpose(1, 0, 2)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _place(rng: np.random.Generator, size: int, extent: int, taken: list[tuple[int, int, int, int]]):
    """A box of side ``extent`` that does not overlap the boxes in ``taken`` (best effort)."""
    for _ in range(50):
        left, top = (int(v) for v in rng.integers(1, size - extent, size=2))
        box = (left, top, left + extent, top + extent)
        if all(box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1] for b in taken):
            return box
    return box


def render(shapes: list[tuple[str, str]], rng: np.random.Generator, size: int = IMAGE_SIZE) -> Scene:
    """Draw the given (color, shape) pairs on a random background at random sizes and places."""
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    placed: list[Shape] = []
    big = len(shapes) == 1
    for color, shape in shapes:
        extent = int(rng.integers(size * 3 // 8, size * 3 // 4)) if big else int(rng.integers(size // 4, size * 3 // 8))
        box = _place(rng, size, extent, [s.box for s in placed])
        jitter = rng.integers(-15, 16, size=3)
        fill = tuple(int(v) for v in np.clip(np.array(COLORS[color]) + jitter, 0, 255))
        _draw(draw, shape, box, fill)
        placed.append(Shape(color, shape, box))
    first = placed[0]
    caption = " and ".join(caption_for(s.color, s.shape) for s in placed)
    qa = (
        tuple((q, first.color) for q in COLOR_QUESTIONS) + tuple((q, first.shape) for q in SHAPE_QUESTIONS)
        if big
        else ()
    )
    return Scene(image=image, shapes=tuple(placed), caption=caption, qa=qa)


def scene(seed: int, size: int = IMAGE_SIZE) -> Scene:
    """One shape on a background; the same seed always gives the same scene."""
    rng = np.random.default_rng(seed)
    color = str(rng.choice(list(COLORS)))
    shape = str(rng.choice(SHAPES))
    return render([(color, shape)], rng, size)


def two_shape_scene(seed: int, size: int = IMAGE_SIZE) -> Scene:
    """Two shapes of different colours, for 'where does the model look' checks."""
    rng = np.random.default_rng(seed)
    first, second = rng.choice(list(COLORS), size=2, replace=False)
    shapes = [(str(first), str(rng.choice(SHAPES))), (str(second), str(rng.choice(SHAPES)))]
    return render(shapes, rng, size)


def scenes(count: int, start_seed: int = 0, size: int = IMAGE_SIZE) -> list[Scene]:
    return [scene(seed, size) for seed in range(start_seed, start_seed + count)]


def vocabulary() -> list[str]:
    """Every word that a toy caption, question or answer uses."""
    words = {"a", "an", "and", *COLORS, *SHAPES}
    for question in COLOR_QUESTIONS + SHAPE_QUESTIONS:
        words.update(question.rstrip("?").split())
    return sorted(words)


# Seeds below this are for training; tests and examples use seeds at or above it.
HELD_OUT_SEED = 1_000_000
