"""Studio tab: one image and one voice (or typed words); every model answers, each part as soon as it is ready."""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from pipelines import studio
from pipelines.core import limits
from pipelines.search import heatmap as heatmaps
from pipelines.studio import Unavailable, Vectors

from . import examples
from .ask import legend_html
from .common import GPU, GPU_CONCURRENCY, audio_input, image_input, option_slider, user_errors
from .toy_note import toy_note

ABOUT = (
    "One image and one question, spoken or typed: every model answers at once (transcript, caption, answer, "
    "zero-shot labels, searches and their fusion), each part as soon as it is ready."
)
# The toy profile's example scenes (every colour and shape among them): the first three with a spoken question.
TOY_SCENES = ["red_circle", "blue_triangle", "green_square", "purple_square", "orange_triangle", "yellow_circle"]
# The default profile's example photos, each with a question about it (the words also search the gallery).
PHOTO_QUESTIONS = [
    ("cat", "is it a cat or a dog?"),
    ("horse", "what animal is this?"),
    ("astronaut", "what is the person wearing?"),
    ("coffee", "what is in the cup?"),
    ("rocket", "what is this?"),
    ("motorcycle", "what vehicle is this?"),
]
EARLY_ABOUT = (
    "**Early fusion** adds the image's and the words' embeddings into one query vector (weighted by the "
    "slider), then searches once."
)
LATE_ABOUT = (
    "**Late fusion** searches with the image and with the words separately, rescales each list's scores to "
    "0–1, then adds them (weighted by the slider)."
)
WAITING = "…"
# What each part is called in the notes, and the outputs it fills.
NAMES = {
    "words": "Words (transcribed or typed)",
    "search_text": "Search by the words",
    "search_image": "Search by the image",
    "fusion": "Fusion",
    "labels": "Zero-shot labels",
    "caption": "Caption",
    "answer": "Answer",
}
DEFAULTS = studio.StudioOptions()
OUTPUTS = ("transcript", "caption", "answer", "heatmap", "by_words", "by_image", "labels", "early", "late", "notes")


@user_errors
def run(
    image: str | None = None,
    audio: str | None = None,
    text: str = "",
    text_weight: float = DEFAULTS.text_weight,
    top_k: float = DEFAULTS.top_k,
    labels: str = DEFAULTS.labels,
):
    """Streams (transcript, caption, answer, heatmap, by_words, by_image, labels, early, late, notes, vectors)."""
    if audio is None:  # typed words are used only without a recording: refused before any model loads
        limits.check_text("The typed text", text)
    shown = dict.fromkeys(OUTPUTS)
    notes: dict[str, str] = {name: WAITING for name in NAMES}
    warning = toy_note(image, "caption") if image else ""  # a toy model on a photo: every answer below is a guess
    options = studio.StudioOptions(text_weight=float(text_weight), top_k=int(top_k), labels=labels or "")
    vectors = None
    # One time budget for the whole run, counted from when its models are loaded (budget.py: model time).
    for part, result in studio.run(image, audio, text or None, options, limits.limits().request_seconds):
        if part == "vectors":
            vectors = result
            continue
        if isinstance(result, Unavailable):
            notes[part] = f"not run: {result.reason}"
        else:
            notes[part] = "done"
            shown.update(_shown(part, result, image))
        shown["notes"] = "\n\n".join(filter(None, [warning, _notes(notes)]))
        yield *(shown[name] for name in OUTPUTS), vectors


def _shown(part: str, result, image) -> dict:
    if part == "words":
        return {"transcript": result.text}
    if part in ("search_text", "search_image"):
        return {"by_words" if part == "search_text" else "by_image": _gallery(result)}
    if part == "fusion":
        return {"early": _gallery(result.early), "late": _gallery(result.late)}
    if part == "labels":
        return {"labels": result.scores}
    if part == "caption":
        return {"caption": result[0].text}
    return {"answer": dict(result.answer.ranked), "heatmap": heatmaps.overlay(image, result.heatmap, 0.5)}


def _gallery(hits) -> list[tuple[str, str]]:
    return [(hit.path, f"{hit.label} · {hit.score:.2f}") for hit in hits]


def _notes(notes: dict[str, str]) -> str:
    return "\n".join(f"- **{NAMES[part]}**: {state}" for part, state in notes.items())


@functools.partial(user_errors, gpu=False)  # runs no model: no GPU to ask for
def reweight(vectors: Vectors | None, text_weight: float, top_k: float):
    """The slider moved: both fusion rankings again, from the embeddings the run kept (no model runs)."""
    if vectors is None or vectors.image is None or vectors.text is None:
        return gr.skip(), gr.skip()
    rankings = studio.fuse(vectors.image, vectors.text, float(text_weight), int(top_k))
    return _gallery(rankings.early), _gallery(rankings.late)


def _examples() -> list[list]:
    """(image, recording, typed words) per example: the profile's example images, each with a question it answers."""
    by_name = {Path(path).stem: path for path in examples.images()}
    if examples.profile() == examples.TOY:
        spoken = examples.spoken("what_color_is_the_shape")
        chosen = [by_name[name] for name in TOY_SCENES if name in by_name]
        return [[path, spoken, None] if i < 3 else [path, None, "what shape is it?"] for i, path in enumerate(chosen)]
    return [[by_name[name], None, question] for name, question in PHOTO_QUESTIONS if name in by_name]


def build() -> None:
    gr.Markdown(ABOUT, elem_classes="tab-about")
    audio = audio_input(label="Speech: a question or a description", elem_id="studio-audio", render=False)
    text = gr.Textbox("", label="…or type it", placeholder=examples.questions()[0], elem_id="studio-text", render=False)
    with gr.Row(equal_height=False):
        with gr.Column(min_width=260):
            image = image_input(label="Image", elem_id="studio-image", height=220)
            chips = gr.Examples(
                _examples(),
                inputs=[image, audio, text],
                visible_columns=[0],  # thumbnails; a click fills the question too and runs everything
                label="Examples: an image with a question (spoken or typed); click one to run every model on it",
                elem_id="studio-examples",
            )
        with gr.Column(min_width=260):
            audio.render()
            text.render()
            button = gr.Button("Run everything", variant="primary")
    notes = gr.Markdown(elem_id="studio-notes")
    with gr.Row():
        transcript = gr.Textbox(label="Transcript", interactive=False, elem_id="studio-transcript")
        caption = gr.Textbox(label="Caption (re-ranked by CLIP)", interactive=False, elem_id="studio-caption")
    with gr.Row():
        answer = gr.Label(label="Answer", num_top_classes=5, elem_id="studio-answer", min_width=240)
        with gr.Column(min_width=240):
            heat = gr.Image(label="Where CLIP finds the answer", interactive=False, elem_id="studio-heatmap")
            gr.HTML(legend_html(), elem_id="studio-heat-legend")
        zero_shot = gr.Label(label="Zero-shot labels", num_top_classes=5, elem_id="studio-labels", min_width=240)
    with gr.Row():
        by_words = gr.Gallery(label="Gallery: closest to the words", columns=4, height=240, elem_id="studio-words")
        by_image = gr.Gallery(label="Gallery: closest to the image", columns=4, height=240, elem_id="studio-by-image")
    text_weight = option_slider(
        studio.StudioOptions, "text_weight", label="Fusion: weight of the words (0 = image only)"
    )
    with gr.Row():
        with gr.Column():
            early = gr.Gallery(label="Early fusion", columns=4, height=240, elem_id="studio-early")
            gr.Markdown(EARLY_ABOUT)
        with gr.Column():
            late = gr.Gallery(label="Late fusion", columns=4, height=240, elem_id="studio-late")
            gr.Markdown(LATE_ABOUT)
    with gr.Accordion("Options", open=False):
        with gr.Row():
            top_k = option_slider(studio.StudioOptions, "top_k", label="Images per search")
            labels = gr.Textbox(
                studio.PROFILE_LABELS["toy" if examples.profile() == "toy" else "default"],
                label="Zero-shot labels when the words name no alternatives (say 'is it a cat or a dog?' to use yours)",
            )
    vectors = gr.State()
    everything = dict(
        fn=run,
        inputs=[image, audio, text, text_weight, top_k, labels],
        outputs=[transcript, caption, answer, heat, by_words, by_image, zero_shot, early, late, notes, vectors],
        concurrency_id=GPU,
        concurrency_limit=GPU_CONCURRENCY,
    )
    gr.on([button.click], **everything, api_name="studio")
    examples.run_on_click(chips, everything)
    text_weight.release(reweight, inputs=[vectors, text_weight, top_k], outputs=[early, late], api_visibility="private")
