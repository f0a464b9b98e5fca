"""Example inputs shipped in assets/examples (origins in assets/LICENSES.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = ASSETS / "examples"


def _files(folder: str, *suffixes: str) -> list[str]:
    directory = EXAMPLES / folder
    return sorted(str(p) for p in directory.iterdir() if p.suffix.lower() in suffixes) if directory.is_dir() else []


def photos() -> list[str]:
    return _files("photos", ".jpg", ".jpeg", ".png")


def toy_scenes() -> list[str]:
    """Single-shape toy scenes, named by their content (red_circle.png): what the toy models were trained on."""
    return [path for path in _files("toy", ".png") if "_and_" not in Path(path).stem]


def images() -> list[str]:
    """Toy scenes first (the toy profile answers those correctly), then real photos."""
    return toy_scenes() + photos()


def speech() -> list[str]:
    return _files("speech", ".wav", ".flac", ".mp3", ".ogg")
