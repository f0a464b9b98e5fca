"""One request must not hold a shared model for minutes: the heavy paths stop cleanly at the per-request time limit
(MM_MAX_REQUEST_SECONDS), keep what they finished and say so. The limit is set tiny here; nothing asserts a time."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from gradio_client import handle_file
from PIL import Image

import pipelines
import toyworld
from demos import ask as ask_tab
from demos import caption as caption_tab
from demos import studio as studio_tab
from demos import transcribe as transcribe_tab
from pipelines import fusion, studio
from pipelines.caption.rerank import CHUNK_IMAGES, caption_and_rerank
from pipelines.core import budget, limits
from pipelines.core.budget import Deadline, stopped_notice
from pipelines.core.io import SAMPLE_RATE
from pipelines.search.encoding import encode_images

TINY = "0.001"  # seconds: spent before the first unit of work ends, so every later one is skipped


def test_a_deadline_counts_down_and_the_notice_says_what_to_do(monkeypatch):
    assert not Deadline(60).expired() and 0 < Deadline(60).left() <= 60
    assert Deadline(0).expired() and Deadline(0).left() == 0 and Deadline(0).generation_seconds() > 0
    assert Deadline.of(None) is None and Deadline.of(5).seconds == 5
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, "7")
    assert Deadline().seconds == 7
    assert stopped_notice(12, 32, "images", Deadline(60)) == (
        "Stopped after 12 of 32 images: the time limit per request is 60 s (MM_MAX_REQUEST_SECONDS). "
        "Send the rest in another request."
    )


def _scenes(count: int, folder) -> list[str]:
    paths = []
    for i, scene in enumerate(toyworld.scenes(count, start_seed=toyworld.HELD_OUT_SEED + 7000)):
        scene.image.save(folder / f"scene{i:02d}.png")
        paths.append(str(folder / f"scene{i:02d}.png"))
    return paths


def test_a_caption_batch_stops_between_chunks_keeps_the_captions_and_says_so(client, tmp_path, monkeypatch):
    paths = _scenes(20, tmp_path)  # five steps of CHUNK_IMAGES (4): only the first runs
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, TINY)
    table, downloads = client.predict([handle_file(p) for p in paths], api_name="/caption_batch")
    done = [row for row in table["data"] if row[1]]
    left = [row for row in table["data"] if not row[1]]
    assert len(done) == CHUNK_IMAGES == 4 and len(left) == 16
    assert [row[0] for row in table["data"]] == [f"scene{i:02d}.png" for i in range(20)]  # upload order kept
    assert all(
        row[-1].startswith(
            "Stopped after 4 of 20 images: the time limit per request is 0.001 s "
            "(MM_MAX_REQUEST_SECONDS). Send the rest in another request"
        )
        for row in left
    )
    assert len(downloads) == 2  # the CSV and JSON still come back


def test_captioning_a_list_under_a_deadline_stops_after_a_small_step(fresh_scenes):
    images = [s.image for s in fresh_scenes[:10]]
    ranked = caption_and_rerank(pipelines.load("caption"), images, fusion.shared_space(), 0.3, deadline=0.0)
    assert len(ranked) == CHUNK_IMAGES and all(rows[0].text for rows in ranked)  # not the captioner's batch of 16


def test_a_damaged_file_in_a_stopped_batch_keeps_its_own_reason(tmp_path, monkeypatch):
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    files = [str(damaged), *_scenes(7, tmp_path)]  # the first step: the damaged file and three scenes
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, TINY)
    warnings = []
    monkeypatch.setattr(caption_tab.gr, "Warning", warnings.append)
    table, _ = caption_tab.caption_batch(files)
    rows = table["data"]
    assert rows[0][1] == "" and "Stopped" not in rows[0][-1] and rows[0][-1]  # why it could not be used
    assert all(row[1] and not row[-1] for row in rows[1:4]), rows
    notice = "Stopped after 3 of 7 images: the time limit per request is 0.001 s (MM_MAX_REQUEST_SECONDS)"
    assert all(row[1] == "" and row[-1].startswith(notice) for row in rows[4:]), rows
    assert warnings and warnings[0].startswith(notice)


def test_generation_stops_at_the_deadline_and_each_result_says_it_may_be_unfinished(fresh_scenes):
    images = [s.image for s in fresh_scenes[:2]]
    captioner = pipelines.load("caption")
    assert not any(c.stopped for c in captioner(images, max_new_tokens=3))
    cut = captioner(images, deadline=0.0, num_beams=3, num_candidates=2)
    assert len(cut) == 2 and all(c.stopped and c.text for c in cut)
    answers = pipelines.load("ask")([(images[0], "what color is the shape?")], deadline=0.0)
    assert answers[0].stopped


ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]


def _speech(speak, tmp_path, repeats: int):
    """``repeats`` sentences, each a little different (one sentence said over and over decodes as a repetition,
    which Whisper re-decodes by random sampling), a second of silence after each: VAD windows end there."""
    parts = []
    for i in range(repeats):
        said = speak(f"The {ORDINALS[i % 10]} fox jumps over the lazy dog. Show me a photo of a cat.")
        samples, rate = soundfile.read(said)
        parts += [samples, np.zeros(rate)]
    path = tmp_path / f"talk{repeats}.wav"
    soundfile.write(path, np.concatenate(parts), rate)
    return str(path)


@pytest.mark.parametrize("vad", [True, False])
def test_a_long_recording_keeps_what_was_transcribed_and_says_where_it_stopped(speak, tmp_path, vad):
    long = _speech(speak, tmp_path, 12)  # about a minute: several windows
    transcriber = pipelines.load("transcribe")
    [whole] = transcriber([_speech(speak, tmp_path, 1)], vad=vad)
    [cut] = transcriber([long], vad=vad, deadline=0.0)
    assert whole.stopped_at is None
    assert cut.has_speech, cut
    assert 0 < cut.stopped_at < cut.duration, cut
    assert all(segment.start < cut.stopped_at for segment in cut.segments), cut
    assert cut.text.lower().count("cat") < 12  # the sentence is said 12 times: not all of them were transcribed


def _quiet(tmp_path, seconds: int = 120) -> str:
    """Noise, no speech: a walk without VAD finds no segment in any window, so only windows can stop it."""
    path = tmp_path / "quiet.wav"
    noise = np.random.default_rng(0).standard_normal(seconds * SAMPLE_RATE) * 0.03
    soundfile.write(path, noise.astype(np.float32), SAMPLE_RATE)
    return str(path)


def test_a_recording_without_speech_stops_at_the_limit_and_never_says_no_speech(tmp_path, monkeypatch):
    quiet = _quiet(tmp_path)
    [cut] = pipelines.load("transcribe")([quiet], vad=False, deadline=0.0)
    assert cut.stopped_at is not None and 0 < cut.stopped_at < cut.duration, cut  # the first window only
    assert all(segment.start < cut.stopped_at for segment in cut.segments), cut
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, TINY)
    monkeypatch.setattr(transcribe_tab.gr, "Warning", lambda message: None)
    for call in (transcribe_tab.transcribe, lambda path, **kw: transcribe_tab.transcribe_files([path], **kw)):
        try:
            details = " ".join(map(str, call(quiet, vad=False)))  # had the noise been heard as words
        except Exception as error:  # nothing heard: the message is the result
            details = str(error)
        assert "Stopped after" in details and "of this 120.0 s recording" in details, details
        assert "No speech" not in details, details


def test_the_transformers_backend_stops_between_windows(tmp_path):
    from pipelines.speech import untrained

    transcriber = pipelines.load("transcribe", str(untrained.build(tmp_path / "whisper", max_length=8)))
    [cut] = transcriber([_quiet(tmp_path, 90)], vad=False, deadline=0.0)
    assert cut.stopped_at is not None and 0 < cut.stopped_at < cut.duration, cut
    assert all(segment.start < cut.stopped_at for segment in cut.segments), cut


def test_later_recordings_are_not_started_once_time_is_up(speak, tmp_path, monkeypatch):
    short = _speech(speak, tmp_path, 1)
    first, second = pipelines.load("transcribe")([short, short], deadline=0.0)
    assert first.has_speech and second.stopped_at == 0.0 and not second.segments
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, TINY)
    text, details, _, files = transcribe_tab.transcribe_files([short, short])
    assert "fox" in text and len(files) == 3  # the first file's transcript and subtitles
    assert "Stopped after 1 of 2 recordings: the time limit per request is 0.001 s (MM_MAX_REQUEST_SECONDS)" in details


def test_gallery_encoding_stops_between_batches_and_leaves_the_rest(tmp_path):
    paths = _scenes(12, tmp_path)
    space = fusion.shared_space()
    vectors, failures, reached = encode_images(space, paths, batch_size=4, deadline=Deadline(0))
    assert len(vectors) == 4 and reached == 4 and not failures  # the other 8 are not failures: a later call's
    vectors, failures, reached = encode_images(space, paths, batch_size=4)  # no deadline: every image
    assert len(vectors) == 12 and reached == 12 and not failures


def test_studio_parts_not_started_at_the_deadline_say_so_and_huge_inputs_are_refused(fresh_scenes):
    image = fresh_scenes[0].image
    parts = dict(studio.run(image, text="what color is the shape?", deadline=Deadline(0)))
    assert parts["search_text"] and not isinstance(parts["search_text"], studio.Unavailable)
    for name in ("caption", "answer"):
        assert isinstance(parts[name], studio.Unavailable)
        assert "time limit per request" in parts[name].reason
    words = dict(studio.run(image, text="red " * 1000))["words"]  # 4,000 characters
    assert isinstance(words, studio.Unavailable) and "limit is 2,000 characters" in words.reason
    with pytest.raises(pipelines.InputError, match="The list of labels is too long: 3,000 characters"):
        studio.StudioOptions(labels="cat, dog, " * 300).verify()
    with pytest.raises(Exception, match="limit is 2,000 characters"):
        next(studio_tab.run(None, None, "a" * 5000))


def test_a_huge_image_is_scaled_down_at_decode_not_refused(tmp_path):
    from pipelines.core.io import load_image

    path = tmp_path / "wide.png"
    Image.new("RGB", (6000, 1500), "white").save(path)
    image = load_image(str(path))
    assert image.size == (limits.IMAGE_SIDE, 512)
    assert load_image(str(path), max_side=100).size == (100, 25)


class _Clock:
    """The budget's clock, moved on only by a test: a slow load or a long step is simulated without waiting."""

    def __init__(self):
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget, "time", clock)
    return clock


def test_the_time_limit_counts_model_time_not_a_slow_model_load(clock, monkeypatch, speak, tmp_path):
    real_load, cold = pipelines.load, set()

    def slow_load(*args, **kwargs):  # a model's first load "takes" far longer than a request may run (60 s)
        key = (args, tuple(sorted(kwargs.items(), key=str)))
        if key not in cold:
            cold.add(key)
            clock.now += 1_000
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pipelines, "load", slow_load)
    monkeypatch.setattr(studio, "load", slow_load)
    monkeypatch.setattr(real_load("caption"), "batch_size", 1)  # two images: two chunks of work
    table, _ = caption_tab.caption_batch(_scenes(2, tmp_path))
    assert all(row[1] and not row[-1] for row in table["data"]), table
    short = _speech(speak, tmp_path, 1)
    _, details, _, _ = transcribe_tab.transcribe_files([short, short])
    assert "Stopped" not in details and details.count("segment") == 2, details
    parts = dict(studio.run(toyworld.scene(toyworld.HELD_OUT_SEED + 7100).image, text="what color is it?", deadline=60))
    assert not isinstance(parts["caption"], studio.Unavailable) and not parts["caption"][0].stopped
    assert not isinstance(parts["answer"], studio.Unavailable) and not parts["answer"].answer.stopped


def test_a_spoken_question_has_one_time_budget_for_transcription_and_answer(clock, monkeypatch, speak, tmp_path):
    real_load, warnings = pipelines.load, []

    def load(task, *args, **kwargs):
        pipeline = real_load(task, *args, **kwargs)
        if task != "transcribe":
            return pipeline

        def transcribing_for_a_minute(*call_args, **call_kwargs):
            result = pipeline(*call_args, **call_kwargs)
            clock.now += 61  # the whole budget (60 s) went on the transcription
            return result

        return transcribing_for_a_minute

    monkeypatch.setattr(pipelines, "load", load)
    monkeypatch.setattr(ask_tab.gr, "Warning", warnings.append)
    image = tmp_path / "scene.png"
    toyworld.scene(toyworld.HELD_OUT_SEED + 7200).image.save(image)
    *_, question = ask_tab.ask_voice(str(image), str(speak("what color is the shape?")))
    assert "color" in question.lower()
    assert any(w.startswith("An answer may be unfinished: the time limit per request is 60 s") for w in warnings)


def test_unheard_tails_are_decoded_under_the_same_deadline(clock):
    from pipelines.speech.chunks import Chunk
    from pipelines.speech.faster import WINDOW_BATCH, FasterWhisper
    from pipelines.speech.options import TranscribeOptions
    from pipelines.speech.results import Segment

    rate, window = 16_000, 30 * 16_000
    windows = [Chunk(i * window, (i + 1) * window) for i in range(WINDOW_BATCH + 1)]  # two groups of windows
    whisper, decoded = object.__new__(FasterWhisper), []
    whisper.workers = 1

    def group(audio, chunks, settings):  # each window: 5 s heard, 25 s left for a tail
        decoded.append(chunks)
        if len(decoded) == 3:  # the first group of tails: the request's time runs out while it is decoded
            clock.now += 1_000
        found = [Segment(c.start / rate, c.start / rate + 5, "words", ()) for c in chunks]
        return found, SimpleNamespace(language="en", language_probability=1.0)

    whisper._group = group
    options = TranscribeOptions(language="en")
    decoding = whisper.decode(np.zeros(len(windows) * window, np.float32), windows, options, lambda s: None, Deadline())
    assert len(decoded) == 3  # the windows' two groups and the first group of tails; the second never started
    tails = decoded[2]
    assert decoding.stopped_at is not None and decoding.stopped_at > tails[-1].start / rate
