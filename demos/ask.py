"""Ask tab: questions about an image (typed, several at once, or spoken) in; ranked answers and where CLIP finds
the answer out."""

from __future__ import annotations

import functools

import gradio as gr

import pipelines
from pipelines import fusion
from pipelines.core import budget, limits
from pipelines.core.batching import batcher
from pipelines.core.io import check_image
from pipelines.search import heatmap as heatmaps
from pipelines.vqa import Answer, AskOptions

from . import examples
from .common import (
    BATCHED,
    BATCHED_CONCURRENCY,
    GPU,
    GPU_CONCURRENCY,
    SliderInput,
    audio_input,
    image_input,
    model_choice,
    note_update,
    option_slider,
    percent,
    require,
    user_errors,
)
from .toy_note import toy_note

EXAMPLE_QUESTIONS = ["what color is the shape?", "what shape is it?"]
MAX_QUESTIONS = 16  # lines answered in one click (one batched forward)
TOP_K = AskOptions().top_k
OPACITY = 0.5
TABLE_HEADERS = ["question", "answer", "probability", "other answers"]
SHOWN_CHARS = 200  # of a question that was cut
DESCRIPTION = (
    "Ask questions about an image (typed, several at once, or spoken): the model ranks its answers, and a heat map "
    "shows where CLIP finds the answer in the image."
)
HEATMAP_EXPLAINED = "Brighter = the region matches the words more, scored by CLIP on crops."
HEATMAP_ABOUT = """**Where the model looks**: where the shared CLIP model (the Search tab's) finds the words under
*Heatmap for*, the answer unless you change them. Square crops of the image are scored by their CLIP similarity to
the words; each spot shows the mean score of the crops covering it, dark (low) to bright yellow (high), **relative
to the rest of this image**.
It is **not** the attention of the model that answered and not a reason for its answer; it is as coarse as the
crops, it always has a hottest spot even when the words fit nowhere, and written text in a photo can fool CLIP."""


# ------------------------------------------------------------------------------------------------- handlers


@user_errors
def ask(image: str | None, question: str = EXAMPLE_QUESTIONS[0], model: str | None = None, top_k: float = TOP_K):
    """Image + question -> best answer, ranked answers (gr.Label), table. Several lines = several questions at
    once: the answer has one line per question, the Label ranks the first question's answers."""
    require(image, "Upload an image (or pick an example) to ask about")
    require(question, f"Type a question about the image, e.g. '{examples.questions()[0]}'")
    check_image(image)  # a file that is no image is refused before the model loads
    questions = _questions(question)
    return _answer(image, questions, pipelines.load("ask", model or None), top_k)


@user_errors
def ask_voice(image: str | None, audio: str | None = None, model: str | None = None, top_k: float = TOP_K):
    """Image + spoken question -> best answer, ranked answers, table, and the transcript (the question asked)."""
    require(image, "Upload an image (or pick an example) to ask about")
    require(audio, f"Record or upload a spoken question, e.g. '{examples.questions()[0]}'")
    check_image(image)
    transcriber, answerer = pipelines.load("transcribe"), pipelines.load("ask", model or None)
    # Bounded like any recording (limits(): its length, checked before the model runs), and one time budget for
    # the transcription and the answer together, from when both models are loaded (budget.py: model time).
    deadline = budget.Deadline()
    [transcript] = transcriber([audio], deadline=deadline)
    if not transcript.has_speech:
        raise gr.Error(
            f"No speech was found in this {transcript.duration:.1f} s recording. Ask again a little louder "
            "or longer, or type the question instead.",
            title="No speech",
            print_exception=False,
        )
    question = transcript.text.strip()
    return (*_answer(image, [question], answerer, top_k, deadline), question)


@user_errors
def heatmap(image: str | None, text: str = "", opacity: float = OPACITY):
    """Image + words -> the image with the heat map of where CLIP finds the words (see HEATMAP_ABOUT)."""
    require(image, "Upload an image (or pick an example) to look at")
    require(text, "Type the words to look for, e.g. 'red' (after a question the answer is filled in)")
    heat = heatmaps.relevance_map(fusion.shared_space(), image, text)
    return heatmaps.overlay(image, heat, float(opacity)), heat, _heat_note(heat)


def heatmap_for_answer(image: str | None, answer: str, opacity: float):
    """After a question: the heat map for the (first) answer, with the words shown in 'Heatmap for'."""
    text = (answer or "").strip().splitlines()[0] if (answer or "").strip() else ""
    if not image or not text:
        return text, None, None, ""
    return (text, *heatmap(image, text, opacity))


@functools.partial(user_errors, gpu=False)  # runs no model: no GPU to ask for
def blend(image: str | None, heat: heatmaps.Heatmap | None, opacity: float):
    """Re-blend the last heat map at a new opacity (no model runs)."""
    if not image or heat is None:
        return gr.skip()
    return heatmaps.overlay(image, heat, float(opacity))


def forget_heatmap():
    """Another image: the heat map shown (and kept for re-blending) belonged to the last one."""
    return None, None, ""


def _questions(text: str) -> list[str]:
    # Each question is cut at the text limit later; a box far longer than all of them could hold is refused at once.
    most = limits.limits().text_chars
    if len(text) > most * MAX_QUESTIONS:
        raise pipelines.InputError(
            f"The questions are too long: {len(text):,} characters; ask at most {MAX_QUESTIONS} questions of "
            f"{most:,} characters ({limits.TEXT_CHARS_ENV}). Shorten them and try again."
        )
    questions = [line.strip() for line in text.splitlines() if line.strip()]
    if len(questions) > MAX_QUESTIONS:
        raise gr.Error(
            f"{len(questions)} questions were given; ask at most {MAX_QUESTIONS} at once (one per line).",
            title="Too many questions",
        )
    return questions


def _answer(image, questions: list[str], answerer, top_k, deadline: budget.Deadline | None = None):
    # One forward pass, shared with other visitors' questions that arrive at the same moment. Without a deadline
    # of its own the request's time limit goes as seconds (not a Deadline), so that concurrent requests with the
    # same options still join; the clock starts when the joined call runs.
    limit = limits.limits().request_seconds if deadline is None else deadline
    bounds = {"top_k": int(top_k), "deadline": limit, "max_batch": limits.limits().images_per_request}
    answers = batcher.run(answerer, [(image, q) for q in questions], **bounds)
    if any(a.stopped for a in answers):
        seconds = limit if deadline is None else deadline.seconds
        gr.Warning(budget.unfinished_notice("An answer", seconds))
    cut = [a for a in answers if a.truncated]
    if cut:
        gr.Warning(
            f"{'A question was' if len(cut) == 1 else f'{len(cut)} questions were'} too long for the model and "
            f"cut to {answerer.max_question_tokens} tokens: “{cut[0].question[:SHOWN_CHARS]}…”"
        )
    table = _table(questions, answers, answerer.max_question_tokens)
    return "\n".join(a.text for a in answers), _label(answers[0]), table


def answer_note(image: str | None, model: str | None):
    """After an answer: the note under it (shown when a toy model answered about a photo, else hidden). Runs no
    model; the API's outputs stay the answer, the ranking and the table."""
    return note_update(toy_note(image, "ask", model))


def legend_html() -> str:
    """The heat map's colour legend: the colour scale from low to high, and what it means."""
    stops = ", ".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in heatmaps.COLORMAP)
    return (
        '<div class="heat-legend" style="margin:4px 0 8px 0">'
        f'<div role="img" aria-label="colour scale from dark (low) to bright (high)" class="heat-legend-bar" '
        f'style="height:14px;border-radius:3px;background:linear-gradient(to right, {stops})"></div>'
        '<div style="display:flex;justify-content:space-between;font-size:0.85em">'
        "<span>low: the words fit less here</span><span>high: the words fit best here</span></div>"
        f'<div class="heat-legend-explained" style="font-size:0.9em">{HEATMAP_EXPLAINED}</div></div>'
    )


def _label(answer: Answer) -> dict[str, float]:
    return {text: probability for text, probability in answer.ranked}


def _table(questions: list[str], answers: list[Answer], max_tokens: int) -> dict:
    rows = [
        [_shown(q, a, max_tokens), a.text, round(a.score, 4), ", ".join(f"{t} ({percent(p)})" for t, p in a.ranked[1:])]
        for q, a in zip(questions, answers)
    ]
    return {"headers": TABLE_HEADERS, "data": rows}


def _shown(question: str, answer: Answer, max_tokens: int) -> str:
    return f"{question[:SHOWN_CHARS]}… (cut: the model reads {max_tokens} tokens)" if answer.truncated else question


def _heat_note(heat: heatmaps.Heatmap) -> str:
    spread = heat.high - heat.low
    warning = (
        " The spread is small: the words fit everywhere about equally, so the colours mean little."
        if spread < 0.05
        else ""
    )
    return (
        f"Heat for *{heat.text}*: {heat.crops} crops, CLIP similarity from {heat.low:.2f} to {heat.high:.2f}.{warning}"
    )


# --------------------------------------------------------------------------------------------------- layout


def build() -> None:
    gr.Markdown(DESCRIPTION, elem_id="ask-about")
    with gr.Row():
        with gr.Column():
            image = image_input(label="Image", elem_id="ask-image", height=150)
            image_chips = gr.Examples(
                examples.images()[:8],
                inputs=image,
                label="Examples: click an image to ask it the question below",
                elem_id="ask-image-examples",
            )
            question = gr.Textbox(
                label=f"Question (one per line: up to {MAX_QUESTIONS} are answered together, in the table)",
                value=examples.questions()[0],
                lines=1,
                max_lines=MAX_QUESTIONS,
                elem_id="ask-question",
            )
            questions = examples.questions()  # ones the profile's model answers right on its example images
            gr.Examples(
                [[question] for question in [*questions, "\n".join(questions)]],
                inputs=question,
                label=None,  # the chips read as questions; a label would push them off a laptop's first screen
                elem_id="ask-question-examples",
            )
            button = gr.Button("Ask", variant="primary")
            with gr.Accordion("Ask by voice", open=False):
                audio = audio_input(label="Spoken question", elem_id="ask-audio")
                voice_button = gr.Button("Ask by voice")
                gr.Markdown("The transcript goes into *Question*, where you can edit it and ask again.")
            with gr.Accordion("Options", open=False):
                model = model_choice("ask")
                top_k = option_slider(AskOptions, "top_k", label="Answers to rank")
        with gr.Column():
            answer = gr.Textbox(label="Answer", interactive=False, elem_id="ask-answer")
            note = gr.Markdown(visible=False, elem_id="ask-note")
            ranked = gr.Label(label="Ranked answers (first question)", elem_id="ask-ranked")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="All questions", interactive=False, elem_id="ask-table")
    with gr.Row():
        with gr.Column():
            heat_image = gr.Image(label="Where the model looks", type="pil", interactive=False, elem_id="ask-heatmap")
            gr.HTML(legend_html(), elem_id="ask-heat-legend")
        with gr.Column():
            gr.Markdown(HEATMAP_ABOUT)
            heat_for = gr.Textbox(
                "",
                label="Heatmap for",
                elem_id="ask-heat-for",
                info="Words to find in the image; filled with the answer after each question",
            )
            opacity = SliderInput(0, 1, value=OPACITY, step=0.05, label="Heatmap opacity")
            heat_button = gr.Button("Show heatmap")
            heat_note = gr.Markdown()
    heat_state = gr.State(None)

    model_event = {"concurrency_id": GPU, "concurrency_limit": GPU_CONCURRENCY}
    show_heat = {
        "fn": heatmap_for_answer,
        "inputs": [image, answer, opacity],
        "outputs": [heat_for, heat_image, heat_state, heat_note],
        "api_visibility": "private",
        **model_event,
    }
    asking = {
        "fn": ask,
        "inputs": [image, question, model, top_k],
        "outputs": [answer, ranked, table],
        "concurrency_id": BATCHED,
        "concurrency_limit": BATCHED_CONCURRENCY,
    }
    asked = gr.on([button.click, question.submit], **asking, api_name="ask")
    asked_by_chip = examples.run_on_click(image_chips, asking)
    asked_by_voice = voice_button.click(
        ask_voice,
        inputs=[image, audio, model, top_k],
        outputs=[answer, ranked, table, question],
        api_name="ask_voice",
        **model_event,
    )
    for event in (asked, asked_by_chip, asked_by_voice):
        event.success(answer_note, inputs=[image, model], outputs=note, api_visibility="private", queue=False)
        event.success(**show_heat)
    gr.on(
        [heat_button.click, heat_for.submit],
        heatmap,
        inputs=[image, heat_for, opacity],
        outputs=[heat_image, heat_state, heat_note],
        api_name="heatmap",
        **model_event,
    )
    opacity.release(blend, inputs=[image, heat_state, opacity], outputs=heat_image, api_visibility="private")
    image.change(forget_heatmap, outputs=[heat_image, heat_state, heat_note], api_visibility="private", queue=False)
    image.change(lambda: note_update(""), outputs=note, api_visibility="private", queue=False)
