"""Hostile volumes are bounded before any model runs: too many files, too much audio, huge images, huge texts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import pipelines
from demos import transcribe as transcribe_tab
from pipelines import fusion
from pipelines.core import limits
from pipelines.core.io import audio_seconds, header_seconds
from pipelines.search import heatmap
from tests.recordings import encode_with_av


def _png(path, color="red"):
    Image.new("RGB", (32, 32), color).save(path)
    return path


def test_defaults_and_environment_overrides(monkeypatch):
    bounds = limits.limits()
    assert (bounds.images_per_request, bounds.audio_files_per_request, bounds.text_chars) == (32, 8, 2000)
    monkeypatch.setenv(limits.IMAGES_ENV, "3")
    assert limits.limits().images_per_request == 3
    monkeypatch.setenv(limits.IMAGES_ENV, "many")
    with pytest.raises(pipelines.PipelineError, match="MM_MAX_IMAGES_PER_REQUEST='many'"):
        limits.limits()


def test_one_upload_listed_too_often_is_refused_naming_the_limit(client, tmp_path, monkeypatch):
    monkeypatch.setenv(limits.IMAGES_ENV, "2")
    image = handle_file(str(_png(tmp_path / "a.png")))
    with pytest.raises(AppError, match=r"Too many images: 3 were given; the limit is 2 images per request"):
        client.predict([image, image, image], api_name="/caption_batch")
    table, _ = client.predict([image, image], api_name="/caption_batch")  # at the limit: captioned
    assert len(table["data"]) == 2 and all(row[1] for row in table["data"])


def _silence(path, seconds: float):
    soundfile.write(path, np.zeros(int(seconds * 8000), np.int16), 8000)
    return str(path)


def test_too_many_recordings_or_too_much_audio_is_refused_before_decoding(tmp_path, monkeypatch):
    wav = _silence(tmp_path / "quiet.wav", 3.0)
    assert header_seconds(wav) == pytest.approx(3.0)
    monkeypatch.setenv(limits.AUDIO_FILES_ENV, "2")
    with pytest.raises(Exception, match=r"Too many recordings: 3 were given; the limit is 2"):
        transcribe_tab.transcribe_files([wav, wav, wav])
    monkeypatch.setenv(limits.AUDIO_SECONDS_ENV, "5")
    with pytest.raises(Exception, match=r"last 6 s together; the limit is 5 s per request"):
        transcribe_tab.transcribe_files([wav, wav])
    limits.check_audio_seconds(2 * header_seconds(wav), limit=6.5)  # just under: accepted


def test_a_200000_by_200_image_heatmap_is_scaled_down_and_its_crops_capped(tmp_path):
    space = fusion.shared_space()
    long = Image.new("RGB", (200_000, 200), "blue")
    long.paste((255, 0, 0), (0, 0, 20_000, 200))
    cropped = []
    original = space.embed_images

    def counting(images):
        cropped.extend(images)
        return original(images)

    space.embed_images = counting
    try:
        heat = heatmap.relevance_map(space, long, "red")
    finally:
        del space.embed_images
    assert len(cropped) == heat.crops <= limits.HEATMAP_CROPS
    assert max(max(crop.size) for crop in cropped) <= limits.HEATMAP_SIDE
    assert heat.heat.shape[1] <= limits.HEATMAP_SIDE


def test_crop_cap_keeps_crops_inside_the_image():
    for size in ((1024, 1), (1024, 5), (1000, 999), (64, 64)):
        boxes = heatmap.crop_boxes(size, max_crops=40)
        assert 0 < len(boxes) <= 40
        assert all(0 <= left < right <= size[0] and 0 <= top < bottom <= size[1] for left, top, right, bottom in boxes)


def test_a_megabyte_query_never_reaches_the_shared_tokenizer():
    space = fusion.shared_space()
    seen = []
    tokenizer = space.tokenizer

    def recording(texts, *args, **kwargs):
        seen.extend(texts)
        return tokenizer(texts, *args, **kwargs)

    space.tokenizer = recording
    try:
        with pytest.raises(pipelines.InputError, match="limit is 2,000 characters"):
            space.embed_texts(["a" * 1_000_000])
        with pytest.raises(pipelines.InputError, match="limit is 2,000 characters"):
            heatmap.relevance_map(space, Image.new("RGB", (32, 32)), "red " * 250_000)
        space.embed_texts(["a red square " * 150])  # just under the limit: embedded
    finally:
        space.tokenizer = tokenizer
    assert seen and max(len(text) for text in seen) <= limits.TEXT_CHARS


def test_a_huge_question_is_cut_and_a_huge_caption_prefix_refused():
    from pipelines.caption.options import CaptionOptions
    from pipelines.vqa.base import clean_question

    assert len(clean_question("what colour is it? " * 100_000)) <= limits.TEXT_CHARS  # a question is cut
    with pytest.raises(pipelines.InputError, match=r"The prefix is too long: 2,001 characters; the limit is 2,000"):
        CaptionOptions(prefix="a" * 2001).verify()


def test_a_megabyte_search_query_is_cut_before_the_tokenizer_and_says_so():
    search = pipelines.load("search")
    seen, tokenizer = [], search.space.tokenizer

    def recording(texts, *args, **kwargs):
        seen.extend(texts)
        return tokenizer(texts, *args, **kwargs)

    search.space.tokenizer = recording
    try:
        [result] = search(["a red circle " * 80_000], top_k=1)
    finally:
        search.space.tokenizer = tokenizer
    assert any("only its beginning" in notice for notice in result.notices)
    assert seen and max(len(text) for text in seen) <= limits.TEXT_CHARS


class _Pipe(io.RawIOBase):
    """A write-only stream that cannot seek, as a browser's MediaRecorder writes: the muxer cannot go back to put
    the duration in the header."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, chunk):
        self.data += bytes(chunk)
        return len(chunk)


def _headerless_webm(path, seconds: float, rate: int = 48_000) -> str:
    pipe = _Pipe()
    samples = (0.3 * np.sin(np.arange(int(seconds * rate)) / rate * 2 * np.pi * 440)).astype(np.float32)
    encode_with_av(pipe, "webm", "libopus", samples, rate)
    path.write_bytes(bytes(pipe.data))
    return str(path)


def test_recordings_without_a_duration_in_their_header_count_by_decoding(tmp_path, monkeypatch):
    webm = _headerless_webm(tmp_path / "recorded.webm", 4.0)
    assert header_seconds(webm) is None  # what counted 0 s before
    assert audio_seconds(webm) == pytest.approx(4.0, abs=0.1)
    monkeypatch.setenv(limits.AUDIO_SECONDS_ENV, "6")
    with pytest.raises(Exception, match=r"last 8 s together; the limit is 6 s per request"):
        transcribe_tab.transcribe_files([webm, webm])
    with pytest.raises(pipelines.InputError, match=r"last 8 s together; the limit is 6 s per request"):
        pipelines.load("transcribe")([webm, webm])  # the pipeline itself, as a script calls it


def test_the_pipelines_themselves_refuse_too_many_inputs_with_the_same_message(monkeypatch):
    monkeypatch.setenv(limits.IMAGES_ENV, "2")
    image = Image.new("RGB", (32, 32), "red")
    message = r"Too many images: 3 were given; the limit is 2 images per request \(MM_MAX_IMAGES_PER_REQUEST\)"
    with pytest.raises(pipelines.InputError, match=message):
        pipelines.load("caption")([image] * 3)
    with pytest.raises(pipelines.InputError, match=r"Too many \(image, question\) pairs: 3 were given"):
        pipelines.load("ask")([(image, "what color is it?")] * 3)
    monkeypatch.setenv(limits.AUDIO_FILES_ENV, "1")
    with pytest.raises(pipelines.InputError, match=r"Too many recordings: 2 were given; the limit is 1"):
        pipelines.load("transcribe")([(16_000, np.zeros(16_000, np.float32))] * 2)


def test_joined_calls_never_hold_more_inputs_than_one_request_may(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.core.batching import Batcher

    monkeypatch.setenv(limits.IMAGES_ENV, "2")
    calls = []

    def captioner(images, **options):  # refuses a long list, as the captioner does
        limits.check_count("images", len(images), limits.limits().images_per_request, limits.IMAGES_ENV)
        calls.append(len(images))
        return [f"caption of {image}" for image in images]

    batcher = Batcher(max_batch=8, wait=5.0)  # a full group runs at once: nothing here waits the 5 s
    with ThreadPoolExecutor(4) as pool:
        captions = list(
            pool.map(lambda i: batcher.run(captioner, [i], max_batch=limits.limits().images_per_request), range(4))
        )
    assert captions == [[f"caption of {i}"] for i in range(4)]
    assert calls == [2, 2]  # joined in pairs, each image captioned once (none refused, then run again alone)


def test_typed_words_beside_a_recording_are_not_refused_for_their_length(speak):
    from demos import studio as studio_tab

    shown = next(studio_tab.run(None, str(speak("a red circle")), "a" * 5_000))  # the recording wins
    assert "red" in shown[0].lower()  # the transcript


def test_text_options_are_refused_like_any_text_with_the_limit_read_when_checked(monkeypatch):
    from pipelines.caption.options import CaptionOptions

    monkeypatch.setenv(limits.TEXT_CHARS_ENV, "10")
    with pytest.raises(
        pipelines.InputError, match=r"The prefix is too long: 11 characters; the limit is 10 characters \(MM_MAX_TEXT"
    ):
        CaptionOptions(prefix="a" * 11).verify()
    CaptionOptions(prefix="a" * 10).verify()


def test_too_many_questions_name_the_rule_they_break():
    from demos import ask as ask_tab

    with pytest.raises(pipelines.InputError, match=r"at most 16 questions of 2,000 characters \(MM_MAX_TEXT_CHARS\)"):
        ask_tab._questions("a" * 40_000)


def test_the_length_of_one_recording_is_a_limit_like_the_others_and_named(monkeypatch):
    from pipelines.core.io import load_audio

    assert limits.limits().audio_seconds_per_clip == limits.AUDIO_SECONDS_PER_CLIP == 600
    monkeypatch.setenv(limits.AUDIO_CLIP_ENV, "1.5")
    assert limits.limits().audio_seconds_per_clip == 1.5
    with pytest.raises(
        pipelines.InputError, match=r"longer than the 1.5 s limit per recording \(MM_MAX_AUDIO_SECONDS;"
    ):
        load_audio((16_000, np.zeros(32_000, np.float32)))
