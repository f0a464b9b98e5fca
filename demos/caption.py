"""Caption tab: one image or many in; candidate captions re-ranked by the CLIP fusion layer out."""

from __future__ import annotations

import csv
import functools
import inspect
import json
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

import pipelines
from pipelines import fusion
from pipelines.caption.options import CaptionOptions, RerankOptions
from pipelines.caption.rerank import CHUNK_IMAGES, Ranked, caption_and_rerank
from pipelines.core import budget, limits, registry, runtime, turns
from pipelines.core.batching import batcher
from pipelines.core.io import check_image, load_image
from pipelines.core.options import declarations

from . import examples
from .common import (
    BATCHED,
    BATCHED_CONCURRENCY,
    GPU,
    GPU_CONCURRENCY,
    NumberInput,
    RadioInput,
    image_input,
    model_choice,
    note_update,
    option_slider,
    request_dir,
    require,
    user_errors,
)
from .toy_note import TOY_NOTE_SOME, is_toy_choice, looks_like_toy_scene, toy_note

BEAM_SEARCH, SAMPLING = "beam search", "sampling"
DEFAULTS = CaptionOptions()
CANDIDATES = 3  # the tab's default: enough to see re-ranking at work
CLIP_WEIGHT = RerankOptions().clip_weight
CANDIDATE_HEADERS = ["caption", "captioner score", "CLIP similarity", "fused score"]
BATCH_HEADERS = ["file", "caption", "captioner score", "CLIP similarity", "fused score", "problem"]
DIGITS = 4  # scores are shown, and written to CSV/JSON, rounded to this many decimals
BATCH_COLUMN_WIDTHS = ["16%", "30%", "9%", "9%", "9%", "27%"]  # the problem column in view, headers on one line
DESCRIPTION = (
    "Caption an image (or many at once): the captioner writes candidate captions and CLIP re-ranks them by how "
    "well they match the picture."
)
BARS_LABEL = "Candidates, best first (bar: fused score, 100% = the best of these)"


class Setting(gr.Slider):
    """A slider that leaves range checks to the pipeline, so an API caller's out-of-range value gets our message."""

    is_template = True  # render with the stock Slider front end

    def preprocess(self, payload):
        return payload


@dataclass(frozen=True)
class Controls:
    """What the tab's option controls hold, in the order of the API's parameters (README, "Caption API").

    ``beams`` and ``max_new_tokens`` None mean the chosen model's own (``initial()`` gives the tab's start values).
    """

    model: str | None = None
    decoding: str = BEAM_SEARCH
    candidates: float = CANDIDATES
    beams: float | None = None
    length_penalty: float = DEFAULTS.length_penalty
    repetition_penalty: float = DEFAULTS.repetition_penalty
    min_new_tokens: float = DEFAULTS.min_new_tokens
    max_new_tokens: float | None = None
    top_p: float = DEFAULTS.top_p
    temperature: float = DEFAULTS.temperature
    seed: float | None = 0
    prefix: str = ""
    clip_weight: float = CLIP_WEIGHT

    @classmethod
    def initial(cls) -> Controls:
        """The tab's start values: the default model's own beams and length (from its registry entry)."""
        defaults = model_defaults(pipelines.default_model("caption"))
        return cls(beams=defaults["num_beams"], max_new_tokens=defaults["max_new_tokens"])

    def options(self) -> dict:
        """The pipeline options asked for; beam controls count for beam search, sampling ones for sampling."""
        if self.decoding not in (BEAM_SEARCH, SAMPLING):
            raise pipelines.InputError(f"Decoding must be '{BEAM_SEARCH}' or '{SAMPLING}'; got {self.decoding!r}")
        options = dict(
            num_candidates=_whole(self.candidates),
            min_new_tokens=_whole(self.min_new_tokens),
            max_new_tokens=_whole(self.max_new_tokens),
            repetition_penalty=_number(self.repetition_penalty),
            prefix=self.prefix or "",
        )
        if self.decoding == SAMPLING:
            return options | dict(
                sample=True, top_p=_number(self.top_p), temperature=_number(self.temperature), seed=_whole(self.seed)
            )
        return options | dict(num_beams=_whole(self.beams), length_penalty=_number(self.length_penalty))


@user_errors
def caption(image: str | None, controls: Controls = Controls()):
    """One image -> (the best caption, its candidates as a table with the three scores, best first)."""
    require(image, "Upload an image (or pick an example) to caption")
    check_image(image)  # a file that is no image is refused before the model loads
    options = controls.options()
    captioner, weight = pipelines.load("caption", controls.model or None), _number(controls.clip_weight)
    # Generation stops at the per-request time limit; as seconds (not a Deadline), so that concurrent requests with
    # the same options still join one batch. The clock starts when the (joined) call runs, after the load.
    bounds = limits.limits()
    seconds = bounds.request_seconds
    if options.get("sample"):  # a seeded draw must not depend on which other visitors' images share its batch
        [ranked] = _captioned([image], captioner, weight, deadline=seconds, **options)
    else:  # one forward pass, shared with other visitors' images that arrive at the same moment
        [ranked] = batcher.run(
            _captioned,
            [image],
            max_batch=bounds.images_per_request,
            captioner=captioner,
            clip_weight=weight,
            deadline=seconds,
            **options,
        )
    if ranked[0].stopped:
        gr.Warning(budget.unfinished_notice("The caption", seconds))
    rows = [[r.text, *_scores(r)] for r in ranked]
    return ranked[0].text, {"headers": CANDIDATE_HEADERS, "data": rows}


def caption_views(image: str | None, model: str | None, decoding: str, candidates, table):
    """After a caption: (the candidates as bars, the note under the caption), from the table the API returned.

    The note says when a toy model captioned a photo, and when fewer distinct candidates came back than were asked
    for. Runs no model (the API's outputs stay the caption and the table)."""
    rows = _rows(table)
    bars = {str(row[0]): float(row[3]) for row in rows if row and row[3] is not None}
    asked = _whole(candidates)
    notes = [toy_note(image, "caption", model), merged_note(len(rows), asked, decoding == SAMPLING)]
    return bars, note_update(*notes)


def batch_views(files: list[str] | None, model: str | None, table):
    """After a batch: (a gallery of the captioned images with their captions, the note under it). Runs no model."""
    rows, files = _rows(table), list(files or [])
    captioned = [(path, row) for path, row in zip(files, rows) if len(row) > 1 and row[1]]
    gallery = [(path, f"{row[0]}: {row[1]}") for path, row in captioned]
    # The model is resolved once; only a toy model's images are looked at (an unreadable one has no caption here).
    some = is_toy_choice("caption", model) and any(not looks_like_toy_scene(path) for path, _ in captioned)
    return gallery, note_update(TOY_NOTE_SOME if some else "")


def _rows(table) -> list[list]:
    """A Dataframe's value (pandas, or the API's {"headers", "data"}) as a list of rows."""
    if table is None:
        return []
    if isinstance(table, dict):
        return [list(row) for row in table.get("data") or []]
    return [list(row) for row in table.itertuples(index=False)] if hasattr(table, "itertuples") else list(table)


def merged_note(distinct: int, asked, sampled: bool = False) -> str:
    """What to say when fewer distinct candidates came back than were asked for ('' when all did)."""
    if not isinstance(asked, int) or distinct >= asked:
        return ""
    merged = asked - distinct
    why = (
        " The model is sure of this image: raise the temperature for more varied captions."
        if sampled
        else " Raise the beams for more distinct captions."
    )
    shown = f"{distinct} distinct caption{'' if distinct == 1 else 's'} {'is' if distinct == 1 else 'are'} shown"
    return f"{merged} of {asked} candidates {'was' if merged == 1 else 'were'} identical and merged: {shown}.{why}"


@user_errors
def caption_batch(files: list[str] | None, controls: Controls = Controls(), progress=gr.Progress()):
    """Many images -> (a table: file, best caption, its scores, problem; [CSV file, JSON file]), in upload order.

    A file that is not a usable image gets its reason in the problem column; the others are still captioned. Once
    the request's time is up (limits().request_seconds) no further step of CHUNK_IMAGES files starts: the images
    left get the notice in their problem column, and the visitor a warning.
    """
    if not files:
        raise gr.Error(
            "Upload one or more images (PNG, JPEG, WebP, GIF, BMP or TIFF) to caption", title="Missing input"
        )
    bounds = limits.limits()  # checked before any model loads or any file is read
    limits.check_count("images", len(files), bounds.images_per_request, limits.IMAGES_ENV)
    options = controls.options()
    progress(0, desc="Loading the models")
    captioner, space = pipelines.load("caption", controls.model or None), fusion.shared_space()
    deadline = budget.Deadline(bounds.request_seconds)  # model time: from when the models are loaded
    captioner.options(**options)  # a bad option is refused before any file is read
    best, problems, reached = {}, {}, len(files)
    # A few files at a time, each decoded once (checked, then captioned): the deadline is checked before each step,
    # so the request ends within one step of its limit, and decoding counts as the work it is.
    for start in range(0, len(files), CHUNK_IMAGES):
        if start and deadline.stop_before_next_step():
            reached = start
            break
        images = {}
        for i in range(start, min(start + CHUNK_IMAGES, len(files))):
            if i > start:  # a large photo takes a while to decode: newer requests go first between two
                turns.give_way(deadline)
            try:
                images[i] = load_image(files[i])
            except pipelines.InputError as error:
                problems[i] = str(error)
        if images:
            ranked = caption_and_rerank(
                captioner, list(images.values()), space, _number(controls.clip_weight), deadline=deadline, **options
            )
            best.update(zip(images, (r[0] for r in ranked)))
        progress(min(start + CHUNK_IMAGES, len(files)) / len(files), desc=f"Captioning {len(files)} images")
    if not best and reached == len(files):
        listed = "\n".join(f"- {Path(files[i]).name}: {problem}" for i, problem in problems.items())
        raise gr.Error(f"None of the files could be captioned:\n{listed}", title="Cannot use these files")
    if reached < len(files):  # stopped at the time limit: the rest are not captioned, and the table says so
        notice = budget.stopped_notice(len(best), len(files) - len(problems), "images", deadline)
        problems.update((i, notice) for i in range(reached, len(files)))
        gr.Warning(notice)
    elif any(r.stopped for r in best.values()):
        gr.Warning(budget.unfinished_notice("Some captions", deadline.seconds))
    rows = []
    for i, path in enumerate(files):
        result = [best[i].text, *_scores(best[i]), ""] if i in best else ["", None, None, None, problems[i]]
        rows.append([Path(path).name, *result])
    return {"headers": BATCH_HEADERS, "data": rows}, _downloads(rows)


def spread(handler, initial: Controls):
    """``handler(first, controls, ...)`` as the API sees it: one parameter per control, named as README documents,
    each defaulting to the tab's initial value, so an omitted one means what the slider first shows."""
    signature = inspect.signature(handler)
    first, _, *rest = signature.parameters.values()
    controls = [
        inspect.Parameter(
            f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=getattr(initial, f.name), annotation=f.type
        )
        for f in fields(Controls)
    ]
    flat = signature.replace(parameters=[first, *controls, *rest])

    @functools.wraps(handler)
    def spread_out(*args, **kwargs):
        bound = flat.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        others = {p.name: values[p.name] for p in rest}
        return handler(values[first.name], Controls(**{f.name: values[f.name] for f in fields(Controls)}), **others)

    spread_out.__signature__ = flat
    spread_out.__annotations__ = {
        p.name: p.annotation for p in flat.parameters.values() if p.annotation is not inspect.Parameter.empty
    }
    return spread_out


def _captioned(images: list, captioner, clip_weight, deadline=None, **options):
    return caption_and_rerank(captioner, images, fusion.shared_space(), clip_weight, deadline=deadline, **options)


def _whole(value):
    """A whole float from a slider as an int; anything else as given, for the pipeline to refuse clearly."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _number(value):
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _scores(ranked: Ranked) -> list[float]:
    return [round(ranked.caption_score, DIGITS), round(ranked.similarity, DIGITS), round(ranked.fused, DIGITS)]


def _downloads(rows: list[list]) -> list[str]:
    directory = request_dir("captions")
    with open(directory / "captions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(BATCH_HEADERS)
        writer.writerows(rows)
    records = [dict(zip(BATCH_HEADERS, row)) for row in rows]
    (directory / "captions.json").write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    return [str(directory / "captions.csv"), str(directory / "captions.json")]


def model_defaults(model: str | None) -> dict:
    """The chosen model's own beams and maximum length, from its registry entry; a model the registry does not
    name (its family is known only once it loads) gets the default model's."""
    settings = runtime.settings()
    initial = registry.defaults(registry.resolve("caption", None, settings.profile))
    try:
        spec = registry.resolve("caption", model, settings.profile, public=settings.public)
    except pipelines.PipelineError:
        return initial
    return initial | registry.defaults(spec)


def build() -> None:
    initial = Controls.initial()
    gr.Markdown(DESCRIPTION, elem_id="caption-about")
    with gr.Tabs():
        with gr.Tab("One image", id="caption-one"):
            with gr.Row():
                with gr.Column():
                    image = image_input(label="Image", elem_id="caption-image", height=220)
                    button = gr.Button("Caption", variant="primary")
                with gr.Column():
                    text = gr.Textbox(label="Caption", interactive=False, buttons=["copy"], elem_id="caption-text")
                    note = gr.Markdown(visible=False, elem_id="caption-note")
                    bars = gr.Label(label=BARS_LABEL, elem_id="caption-bars")
                    with gr.Accordion("Scores in detail", open=False):
                        table = gr.Dataframe(
                            headers=CANDIDATE_HEADERS,
                            label="Candidates, best first",
                            wrap=True,
                            interactive=False,
                            elem_id="caption-candidates",
                        )
            chips = gr.Examples(
                examples.images(), inputs=image, label="Examples: click one to caption it", elem_id="caption-examples"
            )
        with gr.Tab("Several images", id="caption-many"):
            with gr.Row():
                with gr.Column():
                    uploads = gr.File(
                        file_count="multiple",
                        label="Images",  # any file: each gets our verdict
                        elem_id="caption-files",
                    )
                    batch_button = gr.Button("Caption all", variant="primary")
                with gr.Column():
                    batch_note = gr.Markdown(visible=False, elem_id="caption-batch-note")
                    batch_gallery = gr.Gallery(
                        label="Captioned images",
                        columns=3,
                        height="auto",
                        object_fit="contain",
                        interactive=False,
                        elem_id="caption-batch-gallery",
                    )
                    downloads = gr.File(
                        label="Download (CSV, JSON)",
                        file_count="multiple",
                        interactive=False,
                        elem_id="caption-downloads",
                    )
            batch_table = gr.Dataframe(
                headers=BATCH_HEADERS,
                label="Captions",
                wrap=True,
                interactive=False,
                max_height=400,
                column_widths=BATCH_COLUMN_WIDTHS,
                elem_id="caption-batch",
            )
    controls, beam_row, sampling_row = option_controls(initial)
    controls["decoding"].change(
        lambda d: (gr.update(visible=d == BEAM_SEARCH), gr.update(visible=d == SAMPLING)),
        inputs=controls["decoding"],
        outputs=[beam_row, sampling_row],
        api_visibility="private",
        queue=False,
    )
    controls["model"].change(
        lambda name: tuple(model_defaults(name)[key] for key in ("num_beams", "max_new_tokens")),
        inputs=controls["model"],
        outputs=[controls["beams"], controls["max_new_tokens"]],
        api_visibility="private",
        queue=False,
    )
    inputs = list(controls.values())
    image.change(lambda: note_update(), outputs=note, api_visibility="private", queue=False)
    captioning = {
        "fn": spread(caption, initial),
        "inputs": [image, *inputs],
        "outputs": [text, table],
        "concurrency_id": BATCHED,
        "concurrency_limit": BATCHED_CONCURRENCY,
    }
    page_only = {"api_visibility": "private", "queue": False}
    by_button = gr.on([button.click], **captioning, api_name="caption")
    for captioned in (by_button, examples.run_on_click(chips, captioning)):
        captioned.success(
            caption_views,
            inputs=[image, controls["model"], controls["decoding"], controls["candidates"], table],
            outputs=[bars, note],
            **page_only,
        )
        captioned.failure(lambda: (None, note_update()), outputs=[bars, note], **page_only)  # no stale bars
    batched = gr.on(
        [batch_button.click],
        spread(caption_batch, initial),
        inputs=[uploads, *inputs],
        outputs=[batch_table, downloads],
        api_name="caption_batch",
        concurrency_id=GPU,
        concurrency_limit=GPU_CONCURRENCY,
    )
    batched.success(
        batch_views, inputs=[uploads, controls["model"], batch_table], outputs=[batch_gallery, batch_note], **page_only
    )
    batched.failure(lambda: (None, note_update()), outputs=[batch_gallery, batch_note], **page_only)


def option_controls(initial: Controls) -> tuple[dict, gr.Row, gr.Row]:
    """{Controls field: its component}, in the API's order; the two decoding-specific rows. Each slider's span,
    step and help are the option's declaration (CaptionOptions, RerankOptions)."""

    def setting(name: str, label: str, value, options_class: type = CaptionOptions) -> Setting:
        return option_slider(options_class, name, label=label, value=value, component=Setting)

    with gr.Accordion("Options", open=False, elem_id="caption-options"):
        model = model_choice("caption")
        with gr.Row():
            decoding = RadioInput(
                [BEAM_SEARCH, SAMPLING],
                value=initial.decoding,
                label="Decoding",
                elem_id="caption-decoding",
                info="beam search: the likeliest captions; sampling: varied ones",
            )
            candidates = setting("num_candidates", "Candidates", initial.candidates)
        with gr.Row(visible=True) as beam_row:
            beams = setting("num_beams", "Beams", initial.beams)
            length_penalty = setting("length_penalty", "Length penalty", initial.length_penalty)
        with gr.Row(visible=False) as sampling_row:
            top_p = setting("top_p", "Top-p", initial.top_p)
            temperature = setting("temperature", "Temperature", initial.temperature)
            seed = NumberInput(
                initial.seed,
                precision=0,
                label="Seed",
                elem_id="caption-seed",
                info=declarations(CaptionOptions)["seed"].help,
            )
        with gr.Row():
            repetition_penalty = setting("repetition_penalty", "Repetition penalty", initial.repetition_penalty)
            min_new_tokens = setting("min_new_tokens", "Min new tokens", initial.min_new_tokens)
            max_new_tokens = setting("max_new_tokens", "Max new tokens", initial.max_new_tokens)
        prefix = gr.Textbox(initial.prefix, label="Start the caption with", placeholder="a photography of (BLIP only)")
        clip_weight = setting("clip_weight", "Re-ranking: CLIP weight", initial.clip_weight, RerankOptions)
    controls = dict(
        model=model,
        decoding=decoding,
        candidates=candidates,
        beams=beams,
        length_penalty=length_penalty,
        repetition_penalty=repetition_penalty,
        min_new_tokens=min_new_tokens,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        seed=seed,
        prefix=prefix,
        clip_weight=clip_weight,
    )
    return controls, beam_row, sampling_row
