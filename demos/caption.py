"""Caption tab: image in, caption out."""

from __future__ import annotations

import gradio as gr

import pipelines

from . import examples
from .common import GPU, GPU_CONCURRENCY, image_input, model_choice, require, user_errors


@user_errors
def caption(image: str | None, model: str | None = None, beams: float = 3, prefix: str = "") -> str:
    require(image, "Upload an image (or pick an example) to caption")
    captioner = pipelines.load("caption", model or None)
    [result] = captioner([image], num_beams=int(beams), prefix=prefix or "")
    return result.text


def build() -> None:
    with gr.Row():
        with gr.Column():
            image = image_input(label="Image", elem_id="caption-image")
            with gr.Accordion("Options", open=False):
                model = model_choice("caption")
                beams = gr.Slider(1, 10, value=3, step=1, label="Beams", info="Beam search width; 1 = greedy")
                prefix = gr.Textbox("", label="Start the caption with", placeholder="a photography of (BLIP only)")
            button = gr.Button("Caption", variant="primary")
        with gr.Column():
            text = gr.Textbox(label="Caption", interactive=False, buttons=["copy"], elem_id="caption-text")
    gr.Examples(examples.images(), inputs=image, label="Examples: toy scenes and photos")
    gr.on([button.click], caption, inputs=[image, model, beams, prefix], outputs=text,
          api_name="caption", concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)
