"""Tests for pipelines.core.io: every accepted kind of input, and every refusal, made in tmp_path."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import time
import zlib

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipelines.core.errors import InputError, PipelineError
from pipelines.core.io import (
    MAX_IMAGE_PIXELS,
    MAX_SECONDS,
    MIN_SECONDS,
    SAMPLE_RATE,
    audio_duration,
    load_audio,
    load_image,
)
from tests.recordings import encode_with_av

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def near(pixel, expected, tolerance=12):
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb that costs nothing."""
    png = bytearray(encoded(Image.new("1", (8, 8)), "PNG"))
    ihdr = png[12:29]  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(png)


def sine(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    return float(np.abs(np.fft.rfft(samples)).argmax() * rate / len(samples))


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------------------- images


def test_image_from_path_str_path_and_bytes(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (30, 20), RED).save(path)
    for source in (str(path), path, path.read_bytes()):
        image = load_image(source)
        assert (image.mode, image.size) == ("RGB", (30, 20))
        assert image.getpixel((5, 5)) == RED


def test_image_is_fully_loaded_and_file_closed(tmp_path):
    path = tmp_path / "red.gif"
    Image.new("RGB", (10, 10), RED).save(path)
    image = load_image(path)
    path.unlink()
    assert near(image.getpixel((0, 0)), RED)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_common_formats(fmt):
    image = load_image(encoded(Image.new("RGB", (16, 12), BLUE), fmt))
    assert (image.mode, image.size) == ("RGB", (16, 12))
    assert near(image.getpixel((8, 6)), BLUE)


def test_exif_orientation_is_applied():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = RED  # left half red, right half blue
    pixels[:, 20:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image = load_image(encoded(Image.fromarray(pixels), "JPEG", quality=95, exif=exif))
    assert image.size == (20, 40)
    assert near(image.getpixel((10, 5)), RED) and near(image.getpixel((10, 35)), BLUE)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    white = np.full((8, 8), 65535, np.uint16)
    middle = np.full((8, 8), 32896, np.uint16)  # 128 * 257
    assert load_image(encoded(Image.fromarray(white), "PNG")).getpixel((0, 0)) == WHITE
    assert load_image(encoded(Image.fromarray(middle), "PNG")).getpixel((0, 0)) == (128, 128, 128)
    assert load_image(Image.fromarray(middle.astype(np.int32), "I")).getpixel((0, 0)) == (128, 128, 128)


def test_sixteen_bit_images_larger_than_the_side_limit_are_scaled_not_refused():
    grey = np.full((100, 300), 32896, np.uint16)  # 128 * 257: mid grey at 16 bits
    for fmt in ("TIFF", "PNG"):
        image = load_image(encoded(Image.fromarray(grey), fmt), max_side=60)
        assert image.size == (60, 20) and near(image.getpixel((30, 10)), (128, 128, 128), 1)
    image = load_image(Image.new("I;16", (300, 100), 65535), max_side=60)
    assert image.size == (60, 20) and image.getpixel((0, 0)) == WHITE


def transparent_palette() -> Image.Image:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGBA", (4, 4), (0, 0, 0, 0)), WHITE),  # transparent: white background
        (Image.new("RGBA", (4, 4), (255, 0, 0, 255)), RED),
        (Image.new("RGBA", (4, 4), (0, 0, 0, 128)), (127, 127, 127)),
        (Image.new("LA", (4, 4), (0, 0)), WHITE),
        (Image.new("PA", (4, 4), (0, 0)), WHITE),
        (transparent_palette(), WHITE),
        (Image.new("L", (4, 4), 100), (100, 100, 100)),
        (Image.new("1", (4, 4), 1), WHITE),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), WHITE),
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), RED),
        (Image.new("F", (4, 4), 1.0), WHITE),
        (Image.new("F", (4, 4), 0.5), (128, 128, 128)),
        (Image.new("I;16", (4, 4), 65535), WHITE),
        (Image.new("I", (4, 4), 65535), WHITE),
    ],
    ids=lambda value: value.mode if isinstance(value, Image.Image) else "",
)
def test_every_mode_becomes_rgb(image, expected):
    result = load_image(image)
    assert result.mode == "RGB"
    assert near(result.getpixel((1, 1)), expected, tolerance=1)


def test_transparent_png_file_is_composited_on_white():
    assert load_image(encoded(transparent_palette(), "PNG")).getpixel((0, 0)) == WHITE
    assert load_image(encoded(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG")).getpixel((0, 0)) == WHITE


def test_caller_image_is_not_modified():
    original = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    load_image(original)
    assert original.mode == "RGBA" and original.getpixel((0, 0)) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((6, 5), 200, np.uint8), (200, 200, 200)),
        (np.full((6, 5, 3), (255, 0, 0), np.uint8), RED),
        (np.zeros((6, 5, 4), np.uint8), WHITE),  # fully transparent
        (np.full((6, 5, 3), 1.0), WHITE),
        (np.full((6, 5), 0.5, np.float32), (128, 128, 128)),
    ],
)
def test_numpy_arrays(array, expected):
    image = load_image(array)
    assert (image.mode, image.size) == ("RGB", (5, 6))
    assert image.getpixel((2, 2)) == expected


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((4, 4), np.int64), "uint8"),
        (np.full((4, 4), 2.0), "[0, 1]"),
        (np.full((4, 4), np.nan), "[0, 1]"),
    ],
)
def test_bad_arrays_are_refused(array, words):
    assert words in refusal(load_image, array)


def test_missing_directory_and_empty_images_are_refused(tmp_path):
    assert "no image file" in refusal(load_image, tmp_path / "nowhere.png")
    assert "folder" in refusal(load_image, tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty (0 bytes)" in refusal(load_image, tmp_path / "empty.png")
    assert "empty" in refusal(load_image, b"")
    assert "No image" in refusal(load_image, None)


def test_non_image_is_refused_with_advice(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a picture\n")
    message = refusal(load_image, path)
    assert "not an image" in message and "notes.txt" in message and "PNG, JPEG" in message


def test_eps_is_not_opened():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert "not an image" in refusal(load_image, eps)


def test_truncated_jpeg_is_refused():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "JPEG")
    message = refusal(load_image, data[: len(data) // 2])
    assert "truncated" in message


def test_corrupt_png_is_refused():
    data = bytearray(encoded(Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)), "PNG"))
    data[60:80] = bytes(20)  # inside the compressed pixels
    assert "could not be decoded" in refusal(load_image, bytes(data))


def test_decompression_bomb_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_claiming(30_000, 30_000))
    start = time.perf_counter()
    message = refusal(load_image, path)
    assert time.perf_counter() - start < 1.0
    assert "too large" in message


def test_image_over_the_pixel_limit_is_refused_from_its_header():
    width, height = 8000, MAX_IMAGE_PIXELS // 8000 + 1
    message = refusal(load_image, png_header_claiming(width, height))
    assert f"{width}x{height}" in message and "megapixels" in message


def test_real_image_over_a_small_limit_is_refused():
    data = encoded(Image.new("RGB", (100, 100)), "PNG")
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    assert "100x100" in refusal(load_image, data, max_pixels=9_999)


# ----------------------------------------------------------------------------------------- audio


def test_int16_full_scale_is_one():
    loud = np.array([32767, -32768] * 4000, np.int16)
    samples = load_audio((SAMPLE_RATE, loud))
    assert samples.dtype == np.float32 and samples.shape == (8000,)
    assert samples.max() == pytest.approx(1.0, abs=1e-4) and samples.min() == -1.0


def test_int32_and_float64_tuples():
    quarter = load_audio((SAMPLE_RATE, np.full(4000, 2**29, np.int32)))
    assert quarter == pytest.approx(np.full(4000, 0.25))
    assert load_audio((SAMPLE_RATE, np.full(4000, -0.5))) == pytest.approx(np.full(4000, -0.5))


def test_48k_stereo_float_becomes_16k_mono():
    stereo = np.stack([np.full(48000, 0.2), np.full(48000, 0.6)], axis=1).astype(np.float32)
    samples = load_audio((48000, stereo))
    assert samples.shape == (16000,) and samples.dtype == np.float32
    assert samples[2000:-2000] == pytest.approx(np.full(12000, 0.4), abs=1e-3)
    assert audio_duration(samples) == pytest.approx(1.0)


def test_8k_mono_wav_is_upsampled(tmp_path):
    path = tmp_path / "phone.wav"
    sf.write(path, sine(1.5, 8000), 8000, subtype="PCM_16")
    samples = load_audio(path)
    assert samples.shape == (24000,)
    assert peak_frequency(samples) == pytest.approx(440, abs=2)
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.02)


def test_24_bit_wav(tmp_path):
    path = tmp_path / "studio.wav"
    sf.write(path, np.concatenate([np.full(800, 0.5), np.full(800, -1.0)]), SAMPLE_RATE, subtype="PCM_24")
    assert sf.info(path).subtype == "PCM_24"
    samples = load_audio(path)
    assert samples[:800] == pytest.approx(np.full(800, 0.5), abs=1e-6)
    assert samples[800:] == pytest.approx(np.full(800, -1.0), abs=1e-6)


def test_wav_bytes():
    buffer = io.BytesIO()
    sf.write(buffer, sine(0.5, 22050), 22050, format="WAV")
    assert load_audio(buffer.getvalue()).shape == (8000,)


@pytest.mark.parametrize("fmt", ["MP3", "OGG", "FLAC"])
def test_compressed_files_from_soundfile(tmp_path, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, np.stack([sine(1.0, 44100)] * 2, axis=1), 44100, format=fmt)
    samples = load_audio(path)
    assert len(samples) == pytest.approx(SAMPLE_RATE, abs=0.06 * SAMPLE_RATE)  # mp3 pads a little
    assert peak_frequency(samples) == pytest.approx(440, abs=2)


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
def test_stereo_ogg_from_sox(tmp_path):
    path = tmp_path / "sox.ogg"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(path), "synth", "2", "sine", "300"], check=True)
    samples = load_audio(path)
    assert len(samples) == pytest.approx(2 * SAMPLE_RATE, abs=0.02 * SAMPLE_RATE)
    assert peak_frequency(samples) == pytest.approx(300, abs=2)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_from_espeak(tmp_path):
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "what color is the shape"], check=True)
    info = sf.info(path)
    samples = load_audio(path)
    assert audio_duration(samples) == pytest.approx(info.duration, abs=1e-3)
    assert np.abs(samples).max() > 0.1


@pytest.mark.parametrize(
    ("name", "fmt", "codec"),
    [("mic.webm", "webm", "libopus"), ("mic.ogg", "ogg", "libopus"), ("voice.m4a", "mp4", "aac")],
)
def test_browser_formats_go_through_pyav(tmp_path, name, fmt, codec):
    path = tmp_path / name
    encode_with_av(path, fmt, codec, sine(1.0, 48000), 48000)
    for source in (path, path.read_bytes()):
        samples = load_audio(source)
        assert len(samples) == pytest.approx(SAMPLE_RATE, abs=0.05 * SAMPLE_RATE)
        assert peak_frequency(samples) == pytest.approx(440, abs=2)


def test_silence_is_accepted():
    samples = load_audio((SAMPLE_RATE, np.zeros(SAMPLE_RATE, np.int16)))
    assert samples.shape == (SAMPLE_RATE,) and not samples.any()


def test_missing_empty_and_none_audio_are_refused(tmp_path):
    assert "no audio file" in refusal(load_audio, tmp_path / "nowhere.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert "empty (0 bytes)" in refusal(load_audio, tmp_path / "empty.wav")
    assert "empty" in refusal(load_audio, b"")
    assert "No audio" in refusal(load_audio, None)


def test_text_file_is_not_audio(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a recording\n" * 20)
    message = refusal(load_audio, path)
    assert "could not be decoded as audio" in message and "notes.txt" in message and "WAV" in message


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:100],  # cut inside the first frame
        lambda data: data[:4] + bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)),
        lambda data: b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + bytes(40),  # an ID3 header promising more
    ],
    ids=["truncated", "garbage-after-header", "id3-only"],
)
def test_broken_mp3_is_refused(tmp_path, damage):
    good = tmp_path / "good.mp3"
    sf.write(good, sine(1.0, 44100), 44100, format="MP3")
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(damage(good.read_bytes()))
    assert "could not be decoded as audio" in refusal(load_audio, broken)


def test_video_without_audio_is_refused(tmp_path):
    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert "no audio track" in refusal(load_audio, path)


def test_too_short_clip_is_refused(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, sine(0.05, SAMPLE_RATE), SAMPLE_RATE)
    message = refusal(load_audio, path)
    assert "0.05 s" in message and f"{MIN_SECONDS:g} s" in message


def test_empty_recordings_are_refused(tmp_path):
    assert "no audio samples" in refusal(load_audio, (SAMPLE_RATE, np.zeros(0, np.int16)))
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    assert "no audio samples" in refusal(load_audio, path)


def test_too_long_audio_is_refused(tmp_path):
    wav, webm = tmp_path / "long.wav", tmp_path / "long.webm"
    sf.write(wav, sine(3.0, SAMPLE_RATE), SAMPLE_RATE)
    encode_with_av(webm, "webm", "libopus", sine(3.0, 48000), 48000)
    for source in (wav, webm, (SAMPLE_RATE, sine(3.0, SAMPLE_RATE))):
        assert "2 s limit" in refusal(load_audio, source, max_seconds=2)
        assert len(load_audio(source, max_seconds=4)) == pytest.approx(3 * SAMPLE_RATE, abs=0.05 * SAMPLE_RATE)


def test_max_seconds_from_environment(monkeypatch):
    clip = (SAMPLE_RATE, np.zeros(2 * SAMPLE_RATE, np.float32))
    assert MAX_SECONDS == 600
    monkeypatch.setenv("MM_MAX_AUDIO_SECONDS", "1.5")
    assert "1.5 s limit" in refusal(load_audio, clip)
    assert len(load_audio(clip, max_seconds=3)) == 2 * SAMPLE_RATE  # the argument wins
    monkeypatch.setenv("MM_MAX_AUDIO_SECONDS", "soon")
    with pytest.raises(PipelineError, match="MM_MAX_AUDIO_SECONDS"):
        load_audio(clip)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ((SAMPLE_RATE, np.array([0.1, np.nan] * 1000, np.float32)), "NaN"),
        ((SAMPLE_RATE, np.full(2000, np.inf)), "NaN"),
        ((SAMPLE_RATE, np.zeros((2, 16000), np.float32)), "(samples, channels)"),
        ((SAMPLE_RATE, np.zeros(2000, np.complex64)), "int16"),
        ((0, np.zeros(2000, np.float32)), "sample rate"),
        ((SAMPLE_RATE, [0.0] * 2000), "numpy array"),
    ],
    ids=["nan", "inf", "channels-first", "complex", "zero-rate", "list"],
)
def test_bad_tuples_are_refused(source, words):
    assert words in refusal(load_audio, source)


# ------------------------------------------------------------------------------------------ fuzz

# Headers that make the decoders try harder than on plain noise.
IMAGE_MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"BM",
    b"RIFF\x00\x01\x00\x00WEBP",
    b"II*\x00",
]
AUDIO_MAGIC = [b"", b"RIFF\x00\x01\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"ID3\x03\x00", b"\xff\xfb\x90"]
AUDIO_MAGIC.append(b"\x1aE\xdf\xa3")  # Matroska/WebM


def image_samples() -> list[bytes]:
    noise = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return [encoded(noise, fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")]


def audio_samples(tmp_path) -> list[bytes]:
    samples = []
    for fmt in ("WAV", "FLAC", "OGG", "MP3"):
        buffer = io.BytesIO()
        sf.write(buffer, sine(0.3, 8000), 8000, format=fmt)
        samples.append(buffer.getvalue())
    encode_with_av(tmp_path / "fuzz.webm", "webm", "libopus", sine(0.3, 48000), 48000)
    return [*samples, (tmp_path / "fuzz.webm").read_bytes()]


def fuzzed(rng: np.random.Generator, index: int, magic: list[bytes], samples: list[bytes]) -> bytes:
    """Even indices: random bytes after a format's magic number; odd: a valid file, damaged."""
    if index % 2 == 0:
        body = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        return magic[index // 2 % len(magic)] + body
    data = np.frombuffer(samples[index // 2 % len(samples)], np.uint8).copy()
    positions = rng.integers(0, len(data), int(rng.integers(1, 20)))
    data[positions] = rng.integers(0, 256, len(positions), dtype=np.uint8)  # overwrite a few bytes
    cut = int(rng.integers(1, len(data) + 1)) if rng.random() < 0.5 else len(data)  # sometimes cut it short
    return data[:cut].tobytes()


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the corrupt metadata it skips
@pytest.mark.parametrize("kind", ["image", "audio"])
def test_random_bytes_give_a_result_or_input_error(tmp_path, kind):
    if kind == "image":
        load, magic, samples = load_image, IMAGE_MAGIC, image_samples()
    else:
        load, magic, samples = load_audio, AUDIO_MAGIC, audio_samples(tmp_path)
    rng = np.random.default_rng(20240601)
    outcomes = {"accepted": 0, "refused": 0}  # every kind of failure must be an InputError
    for index in range(200):
        try:
            result = load(fuzzed(rng, index, magic, samples))
        except InputError as err:
            assert str(err)
            outcomes["refused"] += 1
            continue
        outcomes["accepted"] += 1
        if kind == "image":
            assert result.mode == "RGB" and result.width * result.height > 0
        else:
            assert result.dtype == np.float32 and result.ndim == 1 and np.isfinite(result).all()
    assert outcomes["refused"] > 0


def test_a_sample_rate_no_recording_uses_is_refused():
    with pytest.raises(InputError, match="sample rate is 1 Hz"):
        load_audio((1, np.zeros(16000, np.float32)))


def test_float_samples_louder_than_full_scale_are_scaled_not_clipped():
    loud = np.sin(np.arange(16000) / 5).astype(np.float32) * 8e36
    samples = load_audio((16000, loud))
    assert np.isfinite(samples).all() and np.abs(samples).max() == pytest.approx(1.0, abs=1e-3)
    assert np.corrcoef(samples, loud / 8e36)[0, 1] > 0.999


@pytest.mark.parametrize("fmt", ["FLAC", "WAV"])
def test_audio_that_would_decode_to_too_many_samples_is_refused(tmp_path, monkeypatch, fmt):
    """A small file of silence can hold hours of many-channel audio; the decoded samples are bounded."""
    import pipelines.core.io as pio

    monkeypatch.setattr(pio, "MAX_SAMPLES", 1_000_000)
    path = tmp_path / f"quiet.{fmt.lower()}"
    sf.write(path, np.zeros((10 * 48_000, 4), np.float32), 48_000, format=fmt)  # 1.92 M samples
    with pytest.raises(InputError, match="more audio data than is read at once"):
        load_audio(path)
    sf.write(path, np.zeros((2 * 48_000, 4), np.float32), 48_000, format=fmt)  # 0.38 M samples
    assert len(load_audio(path)) == 2 * 16_000


def test_more_channels_than_read_are_refused_from_the_header(tmp_path):
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((1600, 20), np.float32), 16_000)
    with pytest.raises(InputError, match="has 20 channels"):
        load_audio(path)
