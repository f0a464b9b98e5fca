"""Property-based tests (hypothesis): whatever bytes or arrays arrive, load_image and load_audio return a valid,
bounded result or raise the project's InputError; they never crash with another error, hang, or allocate without
bound. Crafted headers that claim huge sizes are the interesting cases, besides plain noise."""

from __future__ import annotations

import resource
import signal
import struct
import zlib
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipelines.core.errors import InputError
from pipelines.core.io import MAX_IMAGE_PIXELS, MAX_SECONDS, SAMPLE_RATE, load_audio, load_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
HANG = 30  # seconds: far beyond any decode of these inputs; only a hang gets here
MEMORY_GROWTH = 2 << 30  # bytes of peak resident memory all examples together may add


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MEMORY_GROWTH, f"peak memory grew by {grown / 2**30:.1f} GiB while decoding fuzzed inputs"


@contextmanager
def no_hang():
    def hung(*_):
        raise AssertionError(f"decoding took over {HANG} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_image(data) -> None:
    with no_hang():
        try:
            image = load_image(data)
        except InputError as error:
            assert str(error)  # a message for the user
            return
    assert image.mode == "RGB" and 0 < image.width * image.height <= MAX_IMAGE_PIXELS


def check_audio(data) -> None:
    with no_hang():
        try:
            samples = load_audio(data)
        except InputError as error:
            assert str(error)
            return
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert 0 < len(samples) <= (MAX_SECONDS + 1) * SAMPLE_RATE and np.isfinite(samples).all()


def png(width: int, height: int, bit_depth: int, color_type: int, body: bytes) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height``, followed by ``body`` as its only IDAT chunk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def wav(channels: int, rate: int, bits: int, claimed: int, body: bytes, format_tag: int) -> bytes:
    """A WAV whose header claims the given layout and ``claimed`` bytes of data, followed by ``body``."""
    block = max(1, channels * bits // 8)
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    return (
        b"RIFF"
        + struct.pack("<I", (36 + claimed) & 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", claimed)
        + body
    )


@FUZZ
@given(st.binary(min_size=0, max_size=4096))
def test_image_from_any_bytes(data):
    check_image(data)


@FUZZ
@given(
    width=st.integers(0, 2**31 - 1),
    height=st.integers(0, 2**31 - 1),
    bit_depth=st.sampled_from([1, 2, 4, 8, 16]),
    color_type=st.sampled_from([0, 2, 3, 4, 6]),
    body=st.binary(max_size=2048),
    compress=st.booleans(),
)
def test_image_from_a_png_header_that_claims_any_size(width, height, bit_depth, color_type, body, compress):
    check_image(png(width, height, bit_depth, color_type, zlib.compress(body) if compress else body))


@FUZZ
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int64, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=24),
    )
)
def test_image_from_any_array(array):
    check_image(array)


@FUZZ
@given(st.binary(min_size=0, max_size=4096))
def test_audio_from_any_bytes(data):
    check_audio(data)


@FUZZ
@given(
    channels=st.integers(0, 65535),
    rate=st.integers(0, 2**32 - 1),
    bits=st.sampled_from([0, 8, 16, 24, 32, 64]),
    claimed=st.integers(0, 2**32 - 1),
    body=st.binary(max_size=4096),
    format_tag=st.sampled_from([1, 3, 0xFFFE]),
)
def test_audio_from_a_wav_header_that_claims_any_layout(channels, rate, bits, claimed, body, format_tag):
    check_audio(wav(channels, rate, bits, claimed, body, format_tag))


AUDIO_SHAPES = st.one_of(
    st.tuples(),
    st.tuples(st.integers(0, 20_000)),
    st.tuples(st.integers(0, 4_000), st.integers(0, 40)),
    st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(0, 8)),
)


@FUZZ
@given(
    rate=st.integers(-10, 400_000),
    samples=hnp.arrays(
        dtype=st.sampled_from([np.int16, np.int32, np.float32, np.float64, np.uint8, np.complex64]), shape=AUDIO_SHAPES
    ),
)
def test_audio_from_any_gradio_tuple(rate, samples):
    check_audio((rate, samples))


def test_a_png_that_claims_a_gigapixel_is_refused_from_its_header():
    """The bound the fuzz tests rely on, stated plainly."""
    with pytest.raises(InputError, match="too large"):
        load_image(png(50_000, 50_000, 8, 2, zlib.compress(b"\0" * 100)))


def test_a_real_png_survives_the_helpers():
    """The PNG builder makes files PIL reads, so the crafted cases are near-valid rather than noise."""
    row = b"\0" + bytes([255, 0, 0]) * 4
    image = load_image(png(4, 3, 8, 2, zlib.compress(row * 3)))
    assert image.size == (4, 3) and image.getpixel((0, 0)) == (255, 0, 0)
