"""Is this image outside what a toy model knows? The note a tab shows when a toy model answers about a photo.

The toy models (registry entries whose checkpoint lies under assets/models/toy) were trained only on toyworld's
scenes: a pale, nearly plain background (a tint of 200-255 per channel, sometimes light noise or stripes) with one or
two flat shapes in six palette colours (each within +-15 of its palette value). ``looks_like_toy_scene`` checks an
image against that recipe on a 64-pixel copy (the toys' own size): most pixels must be either that background or a
palette colour. A photo fails it (many colours, shading, dark or busy backgrounds); so does a drawing in other
colours, which the toys do not know either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import toyworld
from pipelines.core import registry, runtime
from pipelines.core.io import load_image

TOY_NOTE = "⚠️ This answer comes from a toy model that knows only coloured shapes; use the default profile for photos."
TOY_NOTE_SOME = (  # under a list of results (a batch, a gallery), some of them about photos
    "⚠️ Some of these results come from a toy model that knows only coloured shapes; use the default profile for photos."
)
TOY_CHECKPOINTS = ("assets", "models", "toy")  # where the registry's toy entries live (registry.json "source")

CHECK_SIDE = toyworld.IMAGE_SIZE  # pixels: the image is judged at the size the toys were trained on
PALE = 170  # every channel at least this: toy background (tint >= 200, minus noise or stripes and compression)
MIN_BACKGROUND = 0.25  # of the pixels: a single shape covers at most (3/4)^2 of a scene
MAX_BACKGROUND_SPREAD = 24.0  # per-channel standard deviation of the background: plain or lightly textured
PALETTE_DISTANCE = 60.0  # RGB distance to a palette colour: +-15 jitter per channel, plus compression and resizing
MIN_EXPLAINED = 0.9  # of the pixels: background or palette colour (the rest: shape edges blended by resizing)
PALETTE = np.array(list(toyworld.COLORS.values()), dtype=np.float32)


def looks_like_toy_scene(image) -> bool:
    """Whether ``image`` (path, bytes, PIL image or array) looks like a toyworld scene: a plain pale background
    with flat shapes in the toy palette. False for a photo (every bundled photo) and for anything unreadable."""
    try:
        picture = load_image(image)
    except Exception:  # noqa: BLE001 - an image we cannot read is not a toy scene; the model's own check says why
        return False
    return _toy_like(picture)


def _toy_like(picture: Image.Image) -> bool:
    scale = CHECK_SIDE / max(picture.size)
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BOX)
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    background = (pixels >= PALE).all(axis=1)
    if background.mean() < MIN_BACKGROUND or pixels[background].std(axis=0).max() > MAX_BACKGROUND_SPREAD:
        return False
    distance = np.linalg.norm(pixels[:, None, :] - PALETTE[None, :, :], axis=2).min(axis=1)
    explained = background | (distance <= PALETTE_DISTANCE)
    return bool(explained.mean() >= MIN_EXPLAINED)


def is_toy_model(spec) -> bool:
    """Whether a loaded model (its registry spec: ``pipeline.spec``) is one of the bundled toy checkpoints."""
    source = Path(getattr(spec, "source", "") or "")
    if source.is_absolute():  # a toy checkpoint typed as a directory
        try:
            source = source.resolve().relative_to(registry.PROJECT_ROOT)
        except (OSError, ValueError):
            return False
    return source.parts[: len(TOY_CHECKPOINTS)] == TOY_CHECKPOINTS


def is_toy_choice(task: str, model: str | None) -> bool:
    """Whether the model a tab's model box names (None or '': the profile's own) is a toy checkpoint; no model
    loads. A name the registry cannot resolve is not a toy (the request that used it said why)."""
    settings = runtime.settings()
    try:
        spec = registry.resolve(task, model or None, settings.profile, public=settings.public)
    except Exception:  # noqa: BLE001 - not resolvable: no note rather than a second error
        return False
    return is_toy_model(spec)


def toy_note(image, task: str, model: str | None = None) -> str:
    """TOY_NOTE when the ``task``'s chosen ``model`` (a registry name or None, or a loaded pipeline) is a toy model
    and ``image`` is not a toy scene; otherwise ''."""
    if image is None:
        return ""
    spec = getattr(model, "spec", None)
    if not (is_toy_model(spec) if spec is not None else is_toy_choice(task, model)):
        return ""
    try:
        picture = load_image(image)
    except Exception:  # noqa: BLE001 - not an image at all: the request's own refusal says why, no note
        return ""
    return "" if _toy_like(picture) else TOY_NOTE
