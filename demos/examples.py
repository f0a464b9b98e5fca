"""Example inputs shipped in assets/examples (origins in assets/LICENSES.md), per profile: the toy profile's models
know only coloured shapes, so it offers toy scenes and shape queries; the default profile offers photos."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from pipelines.core import runtime

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = ASSETS / "examples"
TOY = "toy"

# Search queries whose best match is among the bundled images, per profile.
QUERIES = {
    TOY: [
        "a red circle",
        "a blue triangle",
        "a yellow square",
        "a green square",
        "a purple triangle",
        "an orange circle",
    ],
    "default": ["a cat", "a cup of coffee", "a rocket", "an astronaut", "a horse", "a motorcycle"],
}
# Questions the profile's answering model gets right on its example images.
QUESTIONS = {
    TOY: ["what color is the shape?", "what shape is it?"],
    "default": ["what animal is this?", "what is in the picture?"],
}


def _files(folder: str, *suffixes: str) -> list[str]:
    directory = EXAMPLES / folder
    return sorted(str(p) for p in directory.iterdir() if p.suffix.lower() in suffixes) if directory.is_dir() else []


def profile(name: str | None = None) -> str:
    """The profile examples are chosen for: ``name``, else the running one."""
    return name or runtime.settings().profile


def photos() -> list[str]:
    return _files("photos", ".jpg", ".jpeg", ".png")


def toy_scenes() -> list[str]:
    """Single-shape toy scenes, named by their content (red_circle.png): what the toy models were trained on."""
    return [path for path in _files("toy", ".png") if "_and_" not in Path(path).stem]


def images(name: str | None = None) -> list[str]:
    """The profile's example images: toy scenes for the toy models (they know nothing else), photos otherwise."""
    return toy_scenes() if profile(name) == TOY else photos()


def queries(name: str | None = None) -> list[str]:
    """Search queries for the profile's examples."""
    return list(QUERIES[TOY if profile(name) == TOY else "default"])


def questions(name: str | None = None) -> list[str]:
    """Questions about the profile's example images."""
    return list(QUESTIONS[TOY if profile(name) == TOY else "default"])


def speech() -> list[str]:
    return _files("speech", ".wav", ".flac", ".mp3", ".ogg")


def spoken(stem: str) -> str:
    """The bundled recording named ``stem`` (what it says, e.g. "what_color_is_the_shape")."""
    return str(EXAMPLES / "speech" / f"{stem}.wav")


def run_on_click(chips: gr.Examples, event: dict) -> gr.events.Dependency:
    """A click on one of ``chips`` fills its inputs, then runs ``event`` (fn, inputs, outputs and the lane its
    button uses), as the tab's own button would. gr.Examples(run_on_click=True) would run it outside the button's
    concurrency lane. Not cached: Gradio's example cache is keyed by the component's position only and kept on disk
    across restarts (another profile's answers would be shown), and it ignores the tab's other controls."""
    return chips.load_input_event.success(**event, api_visibility="private")


# Fusion lab: image + text pairs to try trained heads on, per profile (the first bundled task's kind of pair).
FUSION_PAIRS = {
    TOY: [
        ("toy/red_circle.png", "a red circle"),
        ("toy/red_circle.png", "a blue square"),
        ("toy/green_triangle.png", "a green triangle"),
        ("toy/green_triangle.png", "a purple circle"),
    ],
    "default": [
        ("photos/cat.jpg", "a cat"),
        ("photos/cat.jpg", "a rocket"),
        ("photos/horse.jpg", "is it an animal?"),
        ("photos/coffee.jpg", "is it about space?"),
    ],
}


def fusion_tasks(name: str | None = None) -> list[tuple[str, str]]:
    """The Fusion lab's bundled tasks for the profile's encoder, as (title, task name)."""
    from pipelines.fusion import lab_tasks

    return [(task.title, task.name) for task in lab_tasks.tasks(profile(name))]


def fusion_pairs(name: str | None = None) -> list[list[str]]:
    """[image path, text] pairs to try the trained heads on."""
    pairs = FUSION_PAIRS[TOY if profile(name) == TOY else "default"]
    return [[str(EXAMPLES / image), text] for image, text in pairs if (EXAMPLES / image).is_file()]
