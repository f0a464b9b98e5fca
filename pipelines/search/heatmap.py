"""Where in an image the shared CLIP space finds some words: a relevance heatmap from scored crops.

Square crops at a few sizes slide over the image; each is embedded in the CLIP space (all crops in one batched
call) and scored by cosine similarity with the text. A pixel's heat is the mean score of the crops that cover it,
rescaled to [0, 1] over the image. It shows where CLIP sees the words; it is not the attention of whichever model
answered a question, and it is as coarse as the crops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..core.errors import InputError
from ..core.io import load_image
from ..core.limits import check_text, limits
from ..fusion.space import ClipSpace

CROP_SCALES = (0.3, 0.5)  # crop side as a fraction of the image's shorter side
CROP_STEPS = 5  # crop positions along the shorter side, per scale (more along a longer side)
MAP_SIDE = 64  # cells along the heat map's shorter side
MAX_OVERLAY_SIDE = 1024  # pixels; larger images are shown scaled down under the heat map
DISPLAY_SIDE = 512  # pixels: the overlay's longer side, so a 64-pixel toy scene is not shown as a postage stamp
SMOOTHING = 0.25  # Gaussian sigma, as a fraction of the spacing between crop positions: no blocky crop grid
# Colour scale from low to high, evenly spaced over [0, 1]: dark to bright (inferno-like, no rainbow), so that
# brighter always means a better match, also in grey.
COLORMAP = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float32)


@dataclass(frozen=True)
class Heatmap:
    text: str
    heat: np.ndarray  # (rows, cols) float32 in [0, 1], same aspect as the image; 1 = where the text fits best
    low: float  # the lowest and highest crop similarity (cosine) behind the map: a small spread = a weak signal
    high: float
    crops: int  # how many crops were scored


def relevance_map(space: ClipSpace, image, text: str, *, scales=CROP_SCALES, steps: int = CROP_STEPS) -> Heatmap:
    """Heat over ``image`` (path, bytes, PIL image or array) for ``text``, from CLIP similarity of crops."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"Nothing to look for (got {text!r}). Give a few words, e.g. the answer 'red'")
    check_text("The text to look for", text)  # before split/join and the tokenizer
    text = " ".join(text.split())
    bounds = limits()
    image = load_image(image)
    image.thumbnail((bounds.heatmap_side, bounds.heatmap_side))  # a huge or very long image: scaled, not refused
    boxes = crop_boxes(image.size, scales, steps, max_crops=bounds.heatmap_crops)
    crops = space.embed_images([image.crop(box) for box in boxes])  # one call for every crop
    scores = crops @ space.embed_texts([text])[0]
    width, height = image.size
    rows, cols = _map_shape(width, height)
    total = np.zeros((rows, cols), np.float64)
    count = np.zeros((rows, cols), np.float64)
    for (left, top, right, bottom), score in zip(boxes, scores):
        r0, r1 = int(top * rows / height), max(int(top * rows / height) + 1, round(bottom * rows / height))
        c0, c1 = int(left * cols / width), max(int(left * cols / width) + 1, round(right * cols / width))
        total[r0:r1, c0:c1] += score
        count[r0:r1, c0:c1] += 1
    mean = total / np.maximum(count, 1)
    span = mean.max() - mean.min()
    heat = (mean - mean.min()) / span if span > 0 else np.zeros_like(mean)
    return Heatmap(text, heat.astype(np.float32), float(scores.min()), float(scores.max()), len(boxes))


def crop_boxes(
    size: tuple[int, int], scales=CROP_SCALES, steps: int = CROP_STEPS, *, max_crops: int | None = None
) -> list[tuple[int, int, int, int]]:
    """Square (left, top, right, bottom) boxes at each scale, evenly spread so that together they cover the image.

    At most ``max_crops`` in all (a very long image would otherwise need thousands): positions are spaced wider.
    """
    width, height = size
    short = min(width, height)
    budget = max(4, max_crops // len(scales)) if max_crops else None  # crops per scale
    boxes = []
    for scale in scales:
        side = max(1, round(short * scale))
        across = max(2, math.ceil(steps * width / short)) if width > side else 1
        down = max(2, math.ceil(steps * height / short)) if height > side else 1
        if budget is not None and across * down > budget:
            across, down = _within(across, down, budget)
        for top in _positions(height - side, down):
            for left in _positions(width - side, across):
                boxes.append((left, top, left + side, top + side))
    return boxes


def overlay(image, heatmap: Heatmap, opacity: float = 0.5, side: int = DISPLAY_SIDE) -> Image.Image:
    """The image with the heat map blended over it; ``opacity`` 0 shows the image, 1 only the map.

    Shown at ``side`` pixels on its longer side (at most MAX_OVERLAY_SIDE): a small image is scaled up, a large
    one down, and the heat is smoothed and scaled up to that size, so the map reads at the size it is displayed.
    """
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"Opacity must be between 0 and 1; got {opacity!r}")
    image = display_size(load_image(image), side)
    colors = colorize(upscaled(heatmap.heat, image.size))
    blended = (1.0 - opacity) * np.asarray(image, np.float32) + opacity * colors
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def display_size(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """``image`` scaled (up or down, keeping its aspect) to ``side`` pixels on its longer side, at most
    MAX_OVERLAY_SIDE."""
    side = max(1, min(int(side), MAX_OVERLAY_SIDE))
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def upscaled(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(height, width) heat in [0, 1] at ``size`` (width, height): smoothed over about a crop step's spacing, so the
    crop grid does not show as blocks, then scaled smoothly (bicubic)."""
    sigma = SMOOTHING * min(heat.shape) / max(1, CROP_STEPS - 1)
    smooth = _blurred(heat.astype(np.float64), sigma)
    span = smooth.max() - smooth.min()
    smooth = (smooth - smooth.min()) / span if span > 0 else np.zeros_like(smooth)
    big = Image.fromarray(smooth.astype(np.float32), mode="F").resize(size, Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big), 0.0, 1.0)


def _blurred(values: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur with edge padding (sigma in cells; < 0.5 leaves the values as they are)."""
    if sigma < 0.5:
        return values
    radius = int(math.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(values, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        values = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), axis, padded)
    return values


def colorize(heat: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB for heat values in [0, 1], along COLORMAP."""
    position = heat * (len(COLORMAP) - 1)
    low = np.clip(np.floor(position).astype(int), 0, len(COLORMAP) - 2)
    fraction = (position - low)[..., None]
    return COLORMAP[low] * (1.0 - fraction) + COLORMAP[low + 1] * fraction


def _within(across: int, down: int, budget: int) -> tuple[int, int]:
    """Fewer positions along each side, in proportion, so that across * down <= budget (budget >= 4)."""
    if down == 1 or across == 1:
        return min(across, budget), min(down, budget)
    factor = math.sqrt(budget / (across * down))
    across, down = max(2, math.floor(across * factor)), max(2, math.floor(down * factor))
    while across * down > budget:  # the floor of 2 can overshoot on a very long image
        if across >= down:
            across -= 1
        else:
            down -= 1
    return across, down


def _positions(free: int, count: int) -> list[int]:
    if free <= 0 or count <= 1:
        return [max(free, 0) // 2]
    return sorted({round(free * i / (count - 1)) for i in range(count)})


def _map_shape(width: int, height: int) -> tuple[int, int]:
    short = min(width, height)
    side = min(MAP_SIDE, short)
    return max(1, round(side * height / short)), max(1, round(side * width / short))
