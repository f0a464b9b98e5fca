"""Transcribe tab: speech in (file or microphone), text out."""

from __future__ import annotations

import gradio as gr

import pipelines

from . import examples
from .common import GPU, GPU_CONCURRENCY, audio_input, model_choice, require, user_errors


@user_errors
def transcribe(audio: str | None, model: str | None = None) -> tuple[str, str]:
    require(audio, "Record or upload some speech to transcribe")
    transcriber = pipelines.load("transcribe", model or None)
    [result] = transcriber([audio])
    if not result.has_speech:
        raise gr.Error(f"No speech was found in this {result.duration:.1f} s recording. "
                       "Check the microphone or the file, and speak a little louder or longer.", title="No speech")
    details = f"{result.duration:.1f} s of audio · language {result.language} · model {result.model}"
    return result.text, details


def build() -> tuple[gr.Textbox, gr.Button]:
    """Lays out the tab; returns the transcript box and the 'search with it' button for app wiring."""
    with gr.Row():
        with gr.Column():
            audio = audio_input(label="Speech")
            with gr.Accordion("Options", open=False):
                model = model_choice("transcribe")
            button = gr.Button("Transcribe", variant="primary")
        with gr.Column():
            text = gr.Textbox(label="Transcript", interactive=False, lines=4, buttons=["copy"])
            details = gr.Markdown()
            to_search = gr.Button("Search images by what was said")
    gr.Examples(examples.speech(), inputs=audio, label="Examples (spoken by espeak-ng)")
    gr.on([button.click], transcribe, inputs=[audio, model], outputs=[text, details],
          api_name="transcribe", concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)
    return text, to_search
