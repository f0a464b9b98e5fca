"""Every bound on how much one request may ask for, in one place, each overridable by an environment variable.

The defaults fit a free 2-core CPU Space shared by strangers: one request should finish in about a minute and
must not hold a shared model (or its tokenizer) long enough to stall everyone else. Each check runs before any
model does, and a refusal says the limit, how much was given and what to do. Imports no torch, so the UI can
check a request before a model loads.

    limits().images_per_request          # read now, so a changed environment counts
    check_count("images", len(files), limits().images_per_request, IMAGES_ENV)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InputError, PipelineError

# Defaults, and the environment variable that overrides each one.
IMAGES_PER_REQUEST = 32  # images in one batch request; ~1 s each on 2 CPU cores with the small models
IMAGES_ENV = "MM_MAX_IMAGES_PER_REQUEST"
AUDIO_FILES_PER_REQUEST = 8  # recordings in one request
AUDIO_FILES_ENV = "MM_MAX_AUDIO_FILES_PER_REQUEST"
AUDIO_SECONDS_PER_REQUEST = 900.0  # seconds of audio, all recordings of one request together (15 minutes)
AUDIO_SECONDS_ENV = "MM_MAX_AUDIO_SECONDS_PER_REQUEST"
AUDIO_SECONDS_PER_CLIP = 600.0  # seconds of one recording; a longer one is refused as it is decoded (10 minutes)
AUDIO_CLIP_ENV = "MM_MAX_AUDIO_SECONDS"
TEXT_CHARS = 2_000  # characters in one text input; CLIP reads 77 tokens and BLIP a few hundred, so ample
TEXT_CHARS_ENV = "MM_MAX_TEXT_CHARS"
TEXT_LIMIT = "text limit in force"  # an option's max_chars meaning TEXT_CHARS_ENV's value when the text is checked
HEATMAP_SIDE = 1024  # pixels; the heat map works on the image scaled down so its longer side is at most this
HEATMAP_SIDE_ENV = "MM_MAX_HEATMAP_SIDE"
HEATMAP_CROPS = 256  # crops scored for one heat map (~50 per scale suffice for a 64-cell map; room for wide images)
HEATMAP_CROPS_ENV = "MM_MAX_HEATMAP_CROPS"
IMAGE_SIDE = 2048  # pixels; larger images are scaled down at decode so their longer side is this (models read <= 384)
IMAGE_SIDE_ENV = "MM_MAX_IMAGE_SIDE"
IMAGE_PIXELS = 40_000_000  # pixels (width * height); larger images are refused from their header (not configurable)
REQUEST_SECONDS = 60.0  # seconds of model time one request may use; heavy paths stop cleanly there and say so
REQUEST_SECONDS_ENV = "MM_MAX_REQUEST_SECONDS"
QUEUED_PER_VISITOR = 4  # jobs one browser session may have waiting or running at once
QUEUED_PER_VISITOR_ENV = "MM_MAX_QUEUED_PER_VISITOR"
QUEUED_PER_ADDRESS = 16  # jobs one client address may have waiting or running at once (a NAT shares one address)
QUEUED_PER_ADDRESS_ENV = "MM_MAX_QUEUED_PER_ADDRESS"
CUSTOM_MODELS = 2  # models loaded from a typed Hub id or directory (off public mode), least recently used unloaded
CUSTOM_MODELS_ENV = "MM_MAX_CUSTOM_MODELS"
VISITOR_BYTES = 256 * 2**20  # bytes of uploaded images one visitor's gallery may keep on disk
VISITOR_BYTES_ENV = "MM_MAX_VISITOR_BYTES"
ADDRESS_BYTES = 512 * 2**20  # bytes of uploaded images kept for all galleries of one client address together
ADDRESS_BYTES_ENV = "MM_MAX_ADDRESS_BYTES"
STORE_BYTES = 2 * 2**30  # bytes of uploaded images kept on disk for all visitors together
STORE_BYTES_ENV = "MM_MAX_STORE_BYTES"
UPLOAD_HOURS = 24.0  # hours an uploaded image is kept; older ones are swept away
UPLOAD_HOURS_ENV = "MM_UPLOAD_MAX_AGE_HOURS"
ADDRESS_UPLOAD_BYTES = 1 * 2**30  # bytes one client address may upload per hour (Gradio keeps uploads for a day)
ADDRESS_UPLOAD_BYTES_ENV = "MM_MAX_UPLOAD_BYTES_PER_ADDRESS_HOUR"
DAILY_UPLOAD_BYTES = 16 * 2**30  # bytes all visitors together may upload per day: what Gradio's folder can hold
DAILY_UPLOAD_BYTES_ENV = "MM_MAX_UPLOAD_BYTES_PER_DAY"
FUSION_EXAMPLES = 200  # labelled examples in one Fusion lab training request; encoding them is most of its time
FUSION_EXAMPLES_ENV = "MM_MAX_FUSION_EXAMPLES"


@dataclass(frozen=True)
class Limits:
    """The bounds in force (see the module's constants for what each means)."""

    images_per_request: int
    audio_files_per_request: int
    audio_seconds_per_request: float
    audio_seconds_per_clip: float
    text_chars: int
    heatmap_side: int
    heatmap_crops: int
    image_side: int
    request_seconds: float
    queued_per_visitor: int
    queued_per_address: int
    custom_models: int
    visitor_bytes: int
    address_bytes: int
    store_bytes: int
    upload_hours: float
    address_upload_bytes: int
    daily_upload_bytes: int
    fusion_examples: int


def limits() -> Limits:
    """The bounds in force now: each environment variable if set, else its default."""
    return Limits(
        images_per_request=int(_read(IMAGES_ENV, IMAGES_PER_REQUEST, whole=True)),
        audio_files_per_request=int(_read(AUDIO_FILES_ENV, AUDIO_FILES_PER_REQUEST, whole=True)),
        audio_seconds_per_request=_read(AUDIO_SECONDS_ENV, AUDIO_SECONDS_PER_REQUEST),
        audio_seconds_per_clip=_read(AUDIO_CLIP_ENV, AUDIO_SECONDS_PER_CLIP),
        text_chars=int(_read(TEXT_CHARS_ENV, TEXT_CHARS, whole=True)),
        heatmap_side=int(_read(HEATMAP_SIDE_ENV, HEATMAP_SIDE, whole=True)),
        heatmap_crops=max(4, int(_read(HEATMAP_CROPS_ENV, HEATMAP_CROPS, whole=True))),
        image_side=max(64, int(_read(IMAGE_SIDE_ENV, IMAGE_SIDE, whole=True))),
        request_seconds=_read(REQUEST_SECONDS_ENV, REQUEST_SECONDS),
        queued_per_visitor=int(_read(QUEUED_PER_VISITOR_ENV, QUEUED_PER_VISITOR, whole=True)),
        queued_per_address=int(_read(QUEUED_PER_ADDRESS_ENV, QUEUED_PER_ADDRESS, whole=True)),
        custom_models=int(_read(CUSTOM_MODELS_ENV, CUSTOM_MODELS, whole=True)),
        visitor_bytes=int(_read(VISITOR_BYTES_ENV, VISITOR_BYTES, whole=True)),
        address_bytes=int(_read(ADDRESS_BYTES_ENV, ADDRESS_BYTES, whole=True)),
        store_bytes=int(_read(STORE_BYTES_ENV, STORE_BYTES, whole=True)),
        upload_hours=_read(UPLOAD_HOURS_ENV, UPLOAD_HOURS),
        address_upload_bytes=int(_read(ADDRESS_UPLOAD_BYTES_ENV, ADDRESS_UPLOAD_BYTES, whole=True)),
        daily_upload_bytes=int(_read(DAILY_UPLOAD_BYTES_ENV, DAILY_UPLOAD_BYTES, whole=True)),
        fusion_examples=int(_read(FUSION_EXAMPLES_ENV, FUSION_EXAMPLES, whole=True)),
    )


def check_count(what: str, given: int, limit: int, env: str) -> None:
    """Refuse a request with more than ``limit`` ``what`` (e.g. "images"), naming the limit and its variable."""
    if given > limit:
        raise InputError(
            f"Too many {what}: {given} were given; the limit is {limit} {what} per request ({env}). "
            f"Send at most {limit} at a time."
        )


def check_text(what: str, text, limit: int | None = None) -> None:
    """Refuse ``text`` longer than ``limit`` characters (default: the text limit in force, read now), before any
    tokenizer. The refusal names MM_MAX_TEXT_CHARS when that is the limit applied."""
    configured = limit is None
    limit = limits().text_chars if configured else limit
    if isinstance(text, str) and len(text) > limit:
        variable = f" ({TEXT_CHARS_ENV})" if configured else ""
        raise InputError(
            f"{what} is too long: {len(text):,} characters; the limit is {limit:,} characters{variable}. "
            "Shorten it and try again."
        )


def check_audio_seconds(seconds: float, limit: float | None = None) -> None:
    """Refuse a request whose recordings last more than ``limit`` seconds together."""
    limit = limits().audio_seconds_per_request if limit is None else limit
    if seconds > limit:
        raise InputError(
            f"Too much audio: the recordings last {seconds:,.0f} s together; the limit is {limit:,.0f} s per "
            f"request ({AUDIO_SECONDS_ENV}). Send fewer or shorter recordings."
        )


def _read(env: str, default: float, *, whole: bool = False) -> float:
    value = os.environ.get(env)
    if value is None or value == "":
        return default
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        kind = "whole number" if whole else "number"
        raise PipelineError(f"{env}={value!r} is not a positive {kind}. Fix or unset it.")
    return number
