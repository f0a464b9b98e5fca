"""The one place where user input (uploads, microphone recordings, arrays) becomes clean data.

Images come out as fully decoded RGB PIL images, scaled down at decode so their longer side is at most the image
side limit (limits().image_side); audio as mono float32 samples at SAMPLE_RATE. Anything that cannot be used raises
InputError with a message that says what was received and what to do instead; what a decoding library said goes to
the log, not to the visitor.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf
import soxr
from PIL import Image, ImageOps

from .errors import InputError
from .limits import (
    AUDIO_CLIP_ENV,
    AUDIO_FILES_ENV,
    AUDIO_SECONDS_PER_CLIP,
    IMAGE_PIXELS,
    check_audio_seconds,
    check_count,
    limits,
)

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = IMAGE_PIXELS  # pixels (width * height), checked from the header before decoding (limits.py)
SAMPLE_RATE = 16_000  # Hz; every decoded clip is resampled to this rate
MIN_SECONDS = 0.1  # seconds; shorter clips are refused
MAX_SECONDS = AUDIO_SECONDS_PER_CLIP  # seconds; the default longest clip (limits.py: MM_MAX_AUDIO_SECONDS)
MIN_RATE, MAX_RATE = 1_000, 768_000  # Hz: what real recordings use; outside this a header or array is wrong
MAX_CHANNELS = 16  # channels; more than this in a (samples, channels) array means it is transposed
MAX_SAMPLES = int(MAX_SECONDS * 48_000 * 2)  # decoded samples (all channels) held at once: 10 min 48 kHz stereo

# Decoders that PIL may use: common upload formats only (no EPS, which would run Ghostscript).
# JPEG also opens multi-picture (MPO) files from phones.
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "ICO", "PPM")
_IMAGE_ADVICE = "Upload a PNG, JPEG, WebP, GIF, BMP or TIFF image."
# Demuxers that FFmpeg may use for what soundfile cannot read. No playlists (HLS, concat, ...),
# which could make FFmpeg open other files or URLs.
_AV_FORMATS = "mov,matroska,ogg,mp3,aac,wav,flac"
_AUDIO_ADVICE = "Upload a WAV, FLAC, MP3, OGG, M4A or WebM recording."
_WHITE = (255, 255, 255, 255)

Source = str | os.PathLike | bytes | bytearray | memoryview


# ---------------------------------------------------------------------------------------- images


def load_image(source, *, max_pixels: int = MAX_IMAGE_PIXELS, max_side: int | None = None) -> Image.Image:
    """Return ``source`` as a fully decoded RGB image, upright according to its EXIF orientation.

    ``source`` is a file path, the bytes of an image file, a PIL image or a numpy array
    (HxW, HxWx3 or HxWx4; uint8, or float in [0, 1]). Transparent pixels are composited on white
    and 16-bit images are scaled to 8 bits. Images with more than ``max_pixels`` pixels are
    refused from their header, before any pixel is decoded. A larger image than ``max_side`` (default:
    limits().image_side, MM_MAX_IMAGE_SIDE) on its longer side is scaled down to it, not refused: a JPEG is
    decoded at a reduced scale, other formats are reduced right after decoding, so a full-size copy never
    outlives this call.
    """
    side = limits().image_side if max_side is None else int(max_side)
    if source is None:
        raise InputError(f"No image was given. {_IMAGE_ADVICE}")
    if isinstance(source, Image.Image):
        return _decode_image(source, max_pixels, side)
    if isinstance(source, np.ndarray):
        return _decode_image(_image_from_array(source), max_pixels, side)
    with _opened_image(source, max_pixels) as image:
        return _decode_image(image, max_pixels, side)


def image_at_least(source, side: int, purpose: str) -> Image.Image:
    """``load_image(source)``, refused when it is under ``side`` pixels on a side: too small to ``purpose``
    (e.g. "answer questions about")."""
    image = load_image(source)
    if min(image.size) < side:
        raise InputError(
            f"This image is {image.width}x{image.height} pixels: too small to {purpose}. "
            f"Upload an image at least {side}x{side} pixels."
        )
    return image


def check_image(source, *, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse what load_image would refuse from the file's header alone (not an image, a damaged header, too many
    pixels or none), without decoding a pixel: a request is refused before its model loads."""
    if source is None:
        raise InputError(f"No image was given. {_IMAGE_ADVICE}")
    if isinstance(source, (Image.Image, np.ndarray)):
        return
    with _opened_image(source, max_pixels) as image:
        _check_size(image.size, max_pixels)


@contextlib.contextmanager
def _opened_image(source, max_pixels: int) -> Iterator[Image.Image]:
    """The image file ``source`` opened (its header read, no pixel decoded), or an InputError saying why not."""
    open_file = _opener(source, "image")
    with open_file() as fp:
        try:
            image = Image.open(fp, formats=_IMAGE_FORMATS)
        except Image.DecompressionBombError as err:
            log.warning("image refused as a decompression bomb: %s", err)
            raise InputError(
                f"This image is far too large to open safely (the limit is {max_pixels / 1e6:g} megapixels). "
                "Upload a smaller image."
            ) from err
        except Image.UnidentifiedImageError as err:
            raise InputError(f"This file is not an image ({_describe(source)}). {_IMAGE_ADVICE}") from err
        except Exception as err:  # a known format whose header is cut short or damaged
            raise _damaged(err) from err
        with image:
            yield image


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise InputError(
            f"This image is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); the limit is "
            f"{max_pixels / 1e6:g} megapixels. Resize it and upload it again."
        )
    if width == 0 or height == 0:
        raise InputError(f"This image is empty ({width}x{height} pixels). {_IMAGE_ADVICE}")


def _decode_image(image: Image.Image, max_pixels: int, side: int) -> Image.Image:
    _check_size(image.size, max_pixels)
    width, height = image.size
    try:
        if image.format == "JPEG" and max(width, height) > side:
            image.draft("RGB", _fitted(image.size, side))  # the decoder skips detail: 1/2, 1/4 or 1/8 scale
        image.load()  # decodes every pixel, so a truncated or corrupt file fails here
        # Scaled before the conversion where the mode allows it, so compositing and copying work on the small image;
        # the modes _scaled leaves alone (palette, 1-bit, 16-bit) are scaled once they are RGB.
        image = _to_rgb(ImageOps.exif_transpose(_scaled(image, side)))
        return _scaled(image, side)
    except Exception as err:  # decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        raise _damaged(err) from err


def _fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longer side is ``side``, keeping the aspect ratio (each side at least 1)."""
    scale = side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _scaled(image: Image.Image, side: int) -> Image.Image:
    """``image`` with its longer side at most ``side``: reduced by whole factors (box filter), then resampled.
    Palette and 1-bit images (which would resample without averaging) and 16-bit ones (which PIL cannot resample)
    come back as they are."""
    if max(image.size) <= side or image.mode in ("P", "1") or image.mode.startswith("I;16"):
        return image
    return image.resize(_fitted(image.size, side), Image.Resampling.BICUBIC, reducing_gap=2.0)


def _damaged(err: Exception) -> InputError:
    log.warning("image could not be decoded: %s: %s", type(err).__name__, err)
    return InputError(
        "This image could not be decoded; the file may be truncated or damaged. "
        "Save or export it again and upload the new file."
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: high bit depths scaled to 8 bits, transparency composited on white."""
    if image.mode.startswith("I") or image.mode == "F":
        image = Image.fromarray(_to_uint8(np.asarray(image), image.mode))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, _WHITE)
        canvas.alpha_composite(image.convert("RGBA"))
        image = canvas
    return image.convert("RGB")


def _to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Grey pixels of a high-bit-depth mode as uint8.

    Integer modes (I;16*, and I, which PIL uses for 16-bit PNG and TIFF) are read as 16-bit;
    float (F) as [0, 1] if its maximum is at most 1, else as [0, 255].
    """
    pixels = np.nan_to_num(pixels.astype(np.float64))
    if mode == "F":
        scale = 255.0 if pixels.size and pixels.max() <= 1.0 else 1.0
    else:
        scale = 255.0 / 65535.0
    return np.clip(np.rint(pixels * scale), 0, 255).astype(np.uint8)


def _image_from_array(array: np.ndarray) -> Image.Image:
    shape = f"shape {array.shape}, dtype {array.dtype}"
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InputError(f"This array is not an image ({shape}). Pass an HxW, HxWx3 or HxWx4 array.")
    if array.dtype.kind == "f":
        if array.size and not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
            raise InputError(f"This float image has values outside [0, 1] or not finite ({shape}). Scale it to [0, 1].")
        array = np.rint(array * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InputError(f"This array has an unsupported pixel type ({shape}). Pass uint8, or float in [0, 1].")
    return Image.fromarray(np.ascontiguousarray(array))


# ----------------------------------------------------------------------------------------- audio


def load_audio(source, *, max_seconds: float | None = None) -> np.ndarray:
    """Return ``source`` as mono float32 samples in [-1, 1] at SAMPLE_RATE Hz.

    ``source`` is a file path, the bytes of an audio file, or Gradio's ``(sample_rate, array)``
    tuple, with an int16/int32/float32/float64 array of shape (samples,) or (samples, channels).
    Files are decoded with soundfile (WAV, FLAC, OGG, MP3, ...) and otherwise with PyAV (M4A,
    WebM/Opus, MP4, ...). Channels are averaged. Clips shorter than MIN_SECONDS or longer than
    ``max_seconds`` (default: limits().audio_seconds_per_clip, MM_MAX_AUDIO_SECONDS) are refused.
    Silence is not refused.
    """
    limit = limits().audio_seconds_per_clip if max_seconds is None else float(max_seconds)
    if source is None:
        raise InputError(f"No audio was given. {_AUDIO_ADVICE}")
    if isinstance(source, tuple):
        rate, samples = _audio_from_tuple(source)
    else:
        rate, samples = _decode_audio(source, limit)
    if samples.size == 0:
        raise InputError("This recording contains no audio samples. Record again or upload another file.")
    _check_layout(rate, samples.shape[1] if samples.ndim == 2 else 1)
    samples = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32)
    if not np.isfinite(samples).all():
        raise InputError("This recording contains invalid samples (NaN or infinity). Export it again and upload it.")
    _check_duration(len(samples) / rate, limit)
    peak = np.abs(samples).max()
    if peak > 1:  # float samples louder than full scale: scale down rather than clip the waveform
        samples /= peak
    samples = samples.astype(np.float32)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE)
    return np.clip(samples, -1.0, 1.0)  # resampling may overshoot full scale by a hair


def audio_duration(samples: np.ndarray) -> float:
    """Length in seconds of mono samples at SAMPLE_RATE (as returned by ``load_audio``)."""
    return len(samples) / SAMPLE_RATE


def header_seconds(source) -> float | None:
    """Length in seconds of an audio file from its header alone (nothing decoded); None if it does not say."""
    try:
        open_file = _opener(source, "audio")
        with open_file() as fp, sf.SoundFile(fp) as sound:
            return sound.frames / sound.samplerate
    except Exception:  # not a soundfile format, or unreadable: ask FFmpeg's demuxer
        pass
    try:
        with open_file() as fp, av.open(fp, container_options={"format_whitelist": _AV_FORMATS}) as container:
            return container.duration / av.time_base if container.duration else None
    except Exception:  # decoding will say what is wrong with it
        return None


def audio_seconds(source, *, at_most: float | None = None) -> float | None:
    """Length in seconds of a recording: from its header, else by decoding it (nothing kept) until its end or until
    past ``at_most`` seconds, whichever comes first; None if it is not audio at all (loading it will say why).

    Decoding stops at MAX_SAMPLES samples, as ``load_audio`` does, so a header-less stream costs bounded work.
    A (sample_rate, array) pair is measured from its array.
    """
    if isinstance(source, tuple):
        try:
            rate, samples = source
            return len(samples) / float(rate) if rate > 0 else None
        except (TypeError, ValueError):
            return None
    seconds = header_seconds(source)
    if seconds is not None:
        return seconds
    try:
        with _opener(source, "audio")() as fp:
            return _counted_seconds(fp, at_most)
    except Exception as err:  # not audio, or damaged: loading it gives the visitor the reason
        log.info("audio length not measurable by decoding: %s: %s", type(err).__name__, err)
        return None


def check_audio_bounds(sources) -> None:
    """Refuse more recordings, or more seconds of them together, than one request may hold (limits()), before any
    model runs. Lengths come from headers, else from decoding, which stops past the limit (the refusal then says how
    long each recording is, up to the limit); a file that is not audio counts 0 here and is refused when it is
    loaded."""
    if isinstance(sources, (str, bytes)) or not hasattr(sources, "__len__"):
        return  # Pipeline.run refuses it with its own message
    bounds = limits()
    check_count("recordings", len(sources), bounds.audio_files_per_request, AUDIO_FILES_ENV)
    total = 0.0
    for source in sources:
        total += audio_seconds(source, at_most=bounds.audio_seconds_per_request) or 0.0
        check_audio_seconds(total, bounds.audio_seconds_per_request)


def _counted_seconds(fp: BinaryIO, at_most: float | None) -> float:
    """Seconds of the first audio stream, counted by decoding and dropping its frames."""
    with av.open(fp, container_options={"format_whitelist": _AV_FORMATS}) as container:
        stream = container.streams.audio[0]
        rate, channels = stream.rate, max(1, stream.codec_context.channels)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"sample rate {rate}")
        frames = 0
        for frame in container.decode(stream):
            frames += frame.samples
            if (at_most is not None and frames / rate > at_most) or frames * channels > MAX_SAMPLES:
                break
        return frames / rate


def _check_duration(seconds: float, max_seconds: float) -> None:
    if seconds < MIN_SECONDS:
        raise InputError(
            f"This recording is {seconds:.2f} s long; it must be at least {MIN_SECONDS:g} s. Record a longer clip."
        )
    _check_not_too_long(seconds, max_seconds)


def _check_not_too_long(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise InputError(
            f"This recording is longer than the {max_seconds:g} s limit per recording ({AUDIO_CLIP_ENV}; it lasts "
            f"at least {seconds:.1f} s). Trim it to under {max_seconds:g} s and upload it again."
        )


def _check_layout(rate: int, channels: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(
            f"This recording's sample rate is {rate:,} Hz; audio is recorded at {MIN_RATE:,} to "
            f"{MAX_RATE:,} Hz. Export it again at a common rate such as 16,000 or 44,100 Hz."
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputError(
            f"This recording has {channels} channels; at most {MAX_CHANNELS} are read. Export it as "
            "mono or stereo and upload it again."
        )


def _check_not_too_much(frames: int, channels: int) -> None:
    if frames * channels > MAX_SAMPLES:
        raise InputError(
            f"This recording holds more audio data than is read at once ({channels} channels; over "
            f"{MAX_SAMPLES // 1_000_000} million samples). Export it as mono or stereo at 48 kHz or "
            "less, or trim it, and upload it again."
        )


def _audio_from_tuple(source: tuple) -> tuple[int, np.ndarray]:
    """Gradio's (sample_rate, array) as (rate, float samples of shape (n,) or (n, channels))."""
    if len(source) != 2 or not isinstance(source[1], np.ndarray):
        raise InputError(f"Expected a (sample_rate, numpy array) pair; got {_describe(source)}. {_AUDIO_ADVICE}")
    rate, samples = source
    described = f"shape {samples.shape}, dtype {samples.dtype}"
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InputError(f"The sample rate {rate!r} is not a positive whole number of Hz. Record again.")
    if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS):
        raise InputError(f"This audio array has {described}; expected (samples,) or (samples, channels).")
    if samples.dtype.kind == "f":
        return int(rate), samples
    if samples.dtype.kind not in "iu":
        raise InputError(f"This audio array has {described}; expected int16, int32, float32 or float64 samples.")
    info = np.iinfo(samples.dtype)
    full_scale = -float(info.min) if info.min < 0 else (info.max + 1) / 2  # e.g. 32768 for int16
    offset = 0.0 if info.min < 0 else full_scale  # unsigned PCM is centred on half its range
    return int(rate), ((samples.astype(np.float64) - offset) / full_scale).astype(np.float32)


def _decode_audio(source: Source, max_seconds: float) -> tuple[int, np.ndarray]:
    """Try soundfile, then PyAV; refuse with PyAV's complaint (soundfile's as a note) if neither can."""
    open_file = _opener(source, "audio")
    problems = []
    for decode in (_decode_with_soundfile, _decode_with_av):
        with open_file() as fp:
            try:
                return decode(fp, max_seconds)
            except InputError:
                raise
            except Exception as err:  # decoders raise many types for unreadable input
                problems.append(err)
    soundfile_error, av_error = problems
    log.warning("audio could not be decoded: soundfile said %r; PyAV said %r", soundfile_error, av_error)
    raise InputError(f"This file could not be decoded as audio ({_describe(source)}). {_AUDIO_ADVICE}") from av_error


def _decode_with_soundfile(fp: BinaryIO, max_seconds: float) -> tuple[int, np.ndarray]:
    with sf.SoundFile(fp) as sound:
        _check_layout(sound.samplerate, sound.channels)  # from the header, before any sample is decoded
        most = MAX_SAMPLES // sound.channels
        limit = min(int(max_seconds * sound.samplerate) + 1, most + 1)  # one frame past a limit, no more
        samples = sound.read(frames=limit, dtype="float32", always_2d=True)
        _check_not_too_much(len(samples), sound.channels)
        return sound.samplerate, samples


def _decode_with_av(fp: BinaryIO, max_seconds: float) -> tuple[int, np.ndarray]:
    with av.open(fp, container_options={"format_whitelist": _AV_FORMATS}) as container:
        if not container.streams.audio:
            raise InputError(f"This file has no audio track. {_AUDIO_ADVICE}")
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.codec_context.channels
        _check_layout(rate, channels)
        to_float = av.AudioResampler(format="fltp")  # planar float; same rate and channels
        chunks, frames = [], 0
        for frame in container.decode(stream):
            for out in to_float.resample(frame):
                chunks.append(out.to_ndarray())  # (channels, samples)
                frames += out.samples
            _check_not_too_long(frames / rate, max_seconds)  # stop decoding as soon as it is too long
            _check_not_too_much(frames, channels)
        chunks += [out.to_ndarray() for out in to_float.resample(None)]
    if not chunks:
        return rate, np.zeros((0, 1), np.float32)
    return rate, np.concatenate(chunks, axis=1).T


# ---------------------------------------------------------------------------------------- shared


def _opener(source: Source, kind: str) -> Callable[[], BinaryIO]:
    """A function that opens ``source`` (a path or bytes) for reading, after checking it is there."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise InputError(f"The {kind} is empty (0 bytes). Upload the file again.")
        data = bytes(source)
        return lambda: io.BytesIO(data)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"Expected a path or bytes for the {kind}, got {type(source).__name__}")
    path = Path(source)
    try:  # a name too long or otherwise impossible raises here: the visitor hears only that there is no such file
        found, folder, empty = path.exists(), path.is_dir(), path.is_file() and path.stat().st_size == 0
    except (OSError, ValueError) as err:
        log.warning("%s path refused: %s: %s", kind, type(err).__name__, err)
        found = folder = empty = False
    if folder:
        raise InputError(f"'{_name(path)}' is a folder, not an {kind} file. Upload a single file.")
    if not found:
        raise InputError(f"There is no {kind} file named '{_name(path)}'. Upload the file again.")
    if empty:
        raise InputError(f"The {kind} file '{_name(path)}' is empty (0 bytes). Upload the file again.")
    return lambda: path.open("rb")


def _name(path: Path, most: int = 80) -> str:
    """The file's own name (never the server's folders), shortened if it is very long."""
    name = path.name
    return name if len(name) <= most else name[: most - 1] + "…"


def _describe(source) -> str:
    """A short description of what the user gave, for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{len(source):,} bytes of data"
    if isinstance(source, (str, os.PathLike)):
        try:
            return f"'{_name(Path(source))}', {Path(source).stat().st_size:,} bytes"
        except OSError:
            return f"'{_name(Path(source))}'"
    return type(source).__name__
