"""Ask tab: an image and a question in, the answer out."""

from __future__ import annotations

import gradio as gr

import pipelines

from . import examples
from .common import GPU, GPU_CONCURRENCY, image_input, model_choice, require, user_errors

EXAMPLE_QUESTIONS = ["what color is the shape?", "what shape is it?"]


@user_errors
def ask(image: str | None, question: str = "what color is the shape?", model: str | None = None) -> str:
    require(image, "Upload an image (or pick an example) to ask about")
    require(question, "Type a question about the image, e.g. 'what color is the shape?'")
    answerer = pipelines.load("ask", model or None)
    [answer] = answerer([(image, question)])
    if answer.truncated:
        gr.Warning(f"The question was too long for the model and was cut to: “{answer.question[:200]}…”")
    return answer.text


def build() -> None:
    with gr.Row():
        with gr.Column():
            image = image_input(label="Image")
            question = gr.Textbox(label="Question", value=EXAMPLE_QUESTIONS[0])
            with gr.Accordion("Options", open=False):
                model = model_choice("ask")
            button = gr.Button("Ask", variant="primary")
        with gr.Column():
            answer = gr.Textbox(label="Answer", interactive=False)
    gr.Examples([[path, q] for path in examples.images()[:6] for q in EXAMPLE_QUESTIONS[:1]] +
                [[path, EXAMPLE_QUESTIONS[1]] for path in examples.toy_scenes()[:3]],
                inputs=[image, question], label="Examples")
    gr.on([button.click, question.submit], ask, inputs=[image, question, model], outputs=answer,
          api_name="ask", concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)
