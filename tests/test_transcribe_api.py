"""The Transcribe tab served on loopback, called as a remote user would: through gradio_client."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import soxr
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.transcribe_checks import cue_text, missing, parse_srt, parse_vtt

pytestmark = pytest.mark.slow


SENTENCE, KEY_WORDS = "what color is the shape", {"color", "shape"}


def transcribe(client, path, **options) -> tuple:
    return client.predict(handle_file(str(path)), **options, api_name="/transcribe")


def test_transcribe_returns_text_details_segments_and_subtitle_files(client, speak):
    text, details, segments, files = transcribe(
        client, speak("The quick brown fox jumps over the lazy dog. Show me a photo of a cat.")
    )
    assert not missing({"quick", "brown", "fox", "dog", "photo", "cat"}, text)
    assert "English (this model knows only English)" in details and "whisper-tiny.en-embedded" in details
    assert "⚠️" not in details  # no note: the model asked for ran, and heard English
    assert segments["headers"] == ["start (s)", "end (s)", "text"]
    assert " ".join(row[2] for row in segments["data"]) == text
    by_suffix = {Path(f).suffix: Path(f) for f in files}
    assert sorted(by_suffix) == [".srt", ".txt", ".vtt"]
    assert cue_text(parse_srt(by_suffix[".srt"].read_text())) == text
    assert cue_text(parse_vtt(by_suffix[".vtt"].read_text())) == text


def test_word_timestamps_and_hotwords_from_the_api(client, speak):
    text, _, segments, *_ = transcribe(
        client,
        speak("please send the report to Anneliese Kowalczyk"),
        word_timestamps=True,
        hotwords="Anneliese Kowalczyk",
        beam_size=2,
        vad=False,
    )
    assert "Kowalczyk" in text
    assert segments["headers"][-1] == "words (start s)"
    assert "Kowalczyk" in segments["data"][-1][-1]


def test_an_english_only_model_explains_why_it_cannot_translate(client, speak):
    with pytest.raises(AppError, match="English-only model, so it cannot translate"):
        transcribe(client, speak(SENTENCE), task="translate")


def test_several_files_give_one_result_each_and_a_bad_one_its_own_message(client, speak, tmp_path):
    first, second = speak("the quick brown fox jumps over the lazy dog"), speak("show me a photo of a cat")
    notes = tmp_path / "notes.wav"
    notes.write_text("meeting notes, not a recording\n" * 20)
    text, details, segments, files = client.predict(
        [handle_file(str(p)) for p in (first, notes, second)], api_name="/transcribe_files"
    )
    assert not missing({"quick", "fox", "dog", "photo", "cat"}, text)
    assert "| notes.wav |" in details and "could not be decoded as audio" in details
    assert segments["headers"][0] == "file"
    assert {row[0] for row in segments["data"]} == {first.name, second.name}
    assert sorted(Path(f).name for f in files) == sorted(
        f"{p.stem}.{kind}" for p in (first, second) for kind in ("srt", "vtt", "txt")
    )


def test_several_files_none_usable_is_refused_naming_each(client, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "b.mp3").write_text("not audio\n" * 50)
    with pytest.raises(AppError) as info:
        client.predict(
            [handle_file(str(tmp_path / "a.wav")), handle_file(str(tmp_path / "b.mp3"))], api_name="/transcribe_files"
        )
    assert "None of the files could be transcribed" in str(info.value)
    assert "a.wav" in str(info.value) and "b.mp3" in str(info.value)


# ----------------------------------------------------------------------------- uploads in every format


def _sox(*args: str):
    def convert(source: Path, directory: Path) -> Path:
        target = directory / f"converted.{args[-1]}"
        subprocess.run(["sox", str(source), *args[:-1], str(target)], check=True)
        return target

    return convert


def _encoded(codec: str, container: str, suffix: str):
    """Encode with FFmpeg (PyAV): the compressed formats browsers and phones upload."""

    def convert(source: Path, directory: Path) -> Path:
        samples, rate = soundfile.read(source, dtype="float32")
        target = directory / f"converted.{suffix}"
        with av.open(str(target), "w", format=container) as out:
            stream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate)
            stream.layout = "mono"
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
            frame.sample_rate = rate
            resample = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
            for packet in [p for f in resample.resample(frame) for p in stream.encode(f)] + stream.encode(None):
                out.mux(packet)
        return target

    return convert


def _header_broken(source: Path, directory: Path) -> Path:
    """An MP3 whose ID3 header is overwritten: decoders skip to the next frame, so the speech is still there."""
    mp3 = _encoded("libmp3lame", "mp3", "mp3")(source, directory)
    data = mp3.read_bytes()
    mp3.write_bytes(b"\xde\xad" * 8 + data[16:])
    return mp3


@pytest.mark.parametrize(
    "convert",
    [
        _sox("-r", "8000", "wav"),  # telephone quality
        _sox("-r", "48000", "-c", "2", "-e", "floating-point", "-b", "32", "wav"),  # 48 kHz stereo float
        _sox("-b", "24", "wav"),  # 24-bit PCM
        _sox("flac"),
        _sox("ogg"),
        _encoded("libmp3lame", "mp3", "mp3"),
        _encoded("aac", "mp4", "m4a"),
        _encoded("libopus", "webm", "webm"),
        _header_broken,
    ],
    ids=["8khz-mono", "48khz-stereo-float", "24bit", "flac", "ogg", "mp3", "m4a", "webm", "mp3-broken-header"],
)
def test_every_upload_format_is_transcribed(client, speak, tmp_path, convert):
    text, *_ = transcribe(client, convert(speak(SENTENCE), tmp_path))
    assert not missing(KEY_WORDS, text), text


# -------------------------------------------------------------------------------------- bad input


def _write(name: str, data: bytes):
    def make(directory: Path) -> Path:
        (directory / name).write_bytes(data)
        return directory / name

    return make


def _samples(name: str, samples: np.ndarray, rate: int = 16000):
    def make(directory: Path) -> Path:
        soundfile.write(directory / name, samples, rate)
        return directory / name

    return make


def _cut_mp3(directory: Path) -> Path:
    """An MP3 that ends inside its first frame: a header and nothing to decode."""
    source = _samples("tone.wav", np.sin(np.arange(16000) / 10).astype(np.float32) * 0.3)(directory)
    mp3 = _encoded("libmp3lame", "mp3", "mp3")(source, directory)
    mp3.write_bytes(mp3.read_bytes()[:200])
    return mp3


@pytest.mark.parametrize(
    "make,expected",
    [
        (_write("empty.wav", b""), "is empty (0 bytes)"),
        (_samples("nothing.wav", np.zeros(0, np.float32)), "contains no audio samples"),
        (_samples("silence.wav", np.zeros(32000, np.float32)), "No speech was found in this 2.0 s recording"),
        (_samples("blip.wav", np.zeros(800, np.float32)), "0.05 s long; it must be at least 0.1 s"),
        (_write("notes.mp3", b"these are my meeting notes, not a recording\n" * 20), "could not be decoded as audio"),
        (_cut_mp3, "could not be decoded as audio"),
    ],
    ids=["zero-bytes", "no-samples", "silence", "0.05s", "not-audio", "mp3-cut-after-header"],
)
def test_bad_input_gets_our_message_and_transcription_keeps_working(client, speak, tmp_path, make, expected):
    with pytest.raises(AppError) as info:
        transcribe(client, make(tmp_path))
    assert expected in str(info.value)
    assert not missing(KEY_WORDS, transcribe(client, speak(SENTENCE))[0])


def test_a_recording_over_the_configured_limit_is_refused(client, speak, monkeypatch):
    monkeypatch.setenv("MM_MAX_AUDIO_SECONDS", "3")
    with pytest.raises(AppError, match="longer than the 3 s limit"):
        transcribe(client, speak("the museum opens at nine in the morning and closes at six in the evening"))
    monkeypatch.delenv("MM_MAX_AUDIO_SECONDS")
    assert not missing(KEY_WORDS, transcribe(client, speak(SENTENCE))[0])


def test_a_ten_minute_cd_quality_stereo_wav_upload_is_accepted(client, speak, tmp_path):
    """10 minutes of 44.1 kHz 16-bit stereo WAV is ~106 MB: under the app's upload limit, and transcribed."""
    spoken, rate = soundfile.read(speak(SENTENCE), dtype="float32")
    spoken = soxr.resample(spoken, rate, 44100)
    audio = np.zeros((600 * 44100, 2), np.float32)
    audio[44100 : 44100 + len(spoken)] = spoken[:, None] * 0.8
    path = tmp_path / "ten_minutes_stereo.wav"
    soundfile.write(path, audio, 44100, subtype="PCM_16")
    assert path.stat().st_size > 100_000_000

    text, details, *_ = transcribe(client, path)
    assert not missing(KEY_WORDS, text) and "600.0 s of audio" in details
