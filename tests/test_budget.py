"""One request must not hold a shared model for minutes: the heavy paths stop cleanly at the per-request time limit
(MM_MAX_REQUEST_SECONDS), keep what they finished and say so. The limit is set tiny here; nothing asserts a time."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from gradio_client import handle_file
from PIL import Image

import pipelines
import toyworld
from demos import studio as studio_tab
from demos import transcribe as transcribe_tab
from pipelines import fusion, studio
from pipelines.core import limits
from pipelines.core.budget import Deadline, stopped_notice
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
    paths = _scenes(20, tmp_path)  # two chunks of the captioner's batch (16)
    monkeypatch.setenv(limits.REQUEST_SECONDS_ENV, TINY)
    table, downloads = client.predict([handle_file(p) for p in paths], api_name="/caption_batch")
    done = [row for row in table["data"] if row[1]]
    left = [row for row in table["data"] if not row[1]]
    assert len(done) == pipelines.load("caption").batch_size and len(left) == 4
    assert [row[0] for row in table["data"]] == [f"scene{i:02d}.png" for i in range(20)]  # upload order kept
    assert all(
        row[-1].startswith(
            "Stopped after 16 of 20 images: the time limit per request is 0.001 s "
            "(MM_MAX_REQUEST_SECONDS). Send the rest in another request"
        )
        for row in left
    )
    assert len(downloads) == 2  # the CSV and JSON still come back


def test_generation_stops_at_the_deadline_and_each_result_says_it_may_be_unfinished(fresh_scenes):
    images = [s.image for s in fresh_scenes[:2]]
    captioner = pipelines.load("caption")
    assert not any(c.stopped for c in captioner(images, max_new_tokens=3))
    cut = captioner(images, deadline=0.0, num_beams=3, num_candidates=2)
    assert len(cut) == 2 and all(c.stopped and c.text for c in cut)
    answers = pipelines.load("ask")([(images[0], "what color is the shape?")], deadline=0.0)
    assert answers[0].stopped


def _speech(speak, tmp_path, repeats: int):
    one = speak("The quick brown fox jumps over the lazy dog. Show me a photo of a cat.")
    samples, rate = soundfile.read(one)
    pause = np.zeros(rate)  # a second of silence between the sentences: VAD windows end there
    path = tmp_path / f"talk{repeats}.wav"
    soundfile.write(path, np.concatenate([samples, pause] * repeats), rate)
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
    with pytest.raises(pipelines.InputError, match="at most 2000 characters"):
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
