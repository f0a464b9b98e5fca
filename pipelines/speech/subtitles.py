"""A Transcript as subtitle and text files: SubRip (.srt), WebVTT (.vtt) and plain text (.txt)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .results import Segment, Transcript

LINE_CHARS = 42  # characters per subtitle line: the common broadcast limit
FORMATS = ("srt", "vtt", "txt")


def timestamp(seconds: float, separator: str = ".") -> str:
    """HH:MM:SS.mmm (WebVTT) or, with separator=",", HH:MM:SS,mmm (SubRip)."""
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{milliseconds:03d}"


def srt(transcript: Transcript) -> str:
    cues = [
        f"{number}\n{_timing(segment, ',')}\n{_lines(segment.text)}\n"
        for number, segment in enumerate(transcript.segments, 1)
    ]
    return "\n".join(cues)


def vtt(transcript: Transcript) -> str:
    """WebVTT; with word timestamps, each word carries its start time as a cue timestamp tag (karaoke style)."""
    cues = [f"{_timing(segment, '.')}\n{_lines(_timed_words(segment))}\n" for segment in transcript.segments]
    return "\n".join(["WEBVTT\n", *cues])


def txt(transcript: Transcript) -> str:
    return "\n".join(segment.text for segment in transcript.segments) + "\n"


WRITERS = {"srt": srt, "vtt": vtt, "txt": txt}


def write(transcript: Transcript, directory: Path, stem: str) -> list[Path]:
    """Write ``stem``.srt, .vtt and .txt into ``directory``; returns their paths in FORMATS order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FORMATS:
        path = directory / f"{stem}.{name}"
        path.write_text(WRITERS[name](transcript), encoding="utf-8")
        paths.append(path)
    return paths


def _timing(segment: Segment, separator: str) -> str:
    return f"{timestamp(segment.start, separator)} --> {timestamp(segment.end, separator)}"


def _lines(text: str) -> str:
    # A blank line would end the cue early, and "-->" would read as a timing line.
    return "\n".join(textwrap.wrap(text.replace("-->", "->"), LINE_CHARS)) or "..."


def _timed_words(segment: Segment) -> str:
    """Cue text, escaped for WebVTT; words after the first tagged with their start time when there are words."""
    if not segment.words:
        return _escape(segment.text)
    first, *rest = segment.words
    return " ".join([_escape(first.text.strip()), *(f"<{timestamp(w.start)}>{_escape(w.text.strip())}" for w in rest)])


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
