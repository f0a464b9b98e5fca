"""What the transcription tests check, written once: words heard, well-formed segments, subtitle files that parse."""

from __future__ import annotations

import difflib
import html
import re

import numpy as np
import soundfile
import soxr

from pipelines.core.io import SAMPLE_RATE

_SRT_TIMING = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})$")
_VTT_TIMING = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


def missing(key_words, text: str, cutoff: float = 0.75) -> set[str]:
    """The key words not heard in ``text``; tiny.en mishears espeak a little, so near spellings count."""
    heard = set(words(text))
    return {key for key in key_words if not difflib.get_close_matches(key, heard, n=1, cutoff=cutoff)}


def recognisable(key_words, text: str) -> bool:
    """Most of the key words were heard: a sentence a listener would recognise despite a misheard word."""
    return len(missing(key_words, text)) <= len(key_words) // 2


def assert_well_formed(transcript) -> None:
    """Segments in order, not overlapping, inside the recording, with text; words inside their segment."""
    end = 0.0
    for segment in transcript.segments:
        assert end <= segment.start <= segment.end <= transcript.duration, (segment, transcript.duration)
        assert segment.text.strip(), segment
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end, (word, segment)
        end = segment.end


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """SubRip cues as (start, end, text); fails on anything malformed."""
    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), 1):
        lines = block.split("\n")
        assert lines[0] == str(number), f"cue {number} is numbered {lines[0]!r}"
        start, end = _timing(_SRT_TIMING, lines[1])
        assert len(lines) > 2, f"cue {number} has no text"
        cues.append((start, end, " ".join(lines[2:])))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """WebVTT cues as (start, end, text), with cue tags removed and entities unescaped."""
    header, *blocks = text.strip().split("\n\n")
    assert header == "WEBVTT", header
    cues = []
    for block in blocks:
        timing, *lines = block.split("\n")
        start, end = _timing(_VTT_TIMING, timing)
        assert lines, f"cue at {timing} has no text"
        cues.append((start, end, html.unescape(re.sub(r"<[^>]*>", "", " ".join(lines)))))
    return cues


def _timing(pattern: re.Pattern, line: str) -> tuple[float, float]:
    match = pattern.match(line)
    assert match, f"not a timing line: {line!r}"
    h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
    start, end = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
    assert start <= end, line
    return start, end


def cue_text(cues) -> str:
    return " ".join(text for _, _, text in cues)


def concatenate(paths, path, *, gaps, total: float | None = None) -> list[float]:
    """Write the recordings at ``paths`` one after another into ``path`` (16 kHz), ``gaps[i]`` seconds of silence
    before the i-th; pad with silence to ``total`` seconds. Returns where each recording starts, in seconds."""
    pieces, starts, at = [], [], 0.0
    for source, gap in zip(paths, gaps):
        samples, rate = soundfile.read(source, dtype="float32")
        samples = soxr.resample(samples, rate, SAMPLE_RATE)
        pieces += [np.zeros(int(gap * SAMPLE_RATE), np.float32), samples]
        starts.append(at + gap)
        at += gap + len(samples) / SAMPLE_RATE
    audio = np.concatenate(pieces)
    if total is not None:
        audio = np.pad(audio, (0, int(total * SAMPLE_RATE) - len(audio)))
    soundfile.write(path, audio, SAMPLE_RATE)
    return starts
