"""Caption tab: one image or many in; candidate captions re-ranked by the CLIP fusion layer out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gradio as gr

import pipelines
from pipelines import fusion
from pipelines.caption.options import GENERIC_DEFAULTS, MAX_CANDIDATES, MAX_NEW_TOKENS, MODEL_DEFAULTS, CaptionOptions
from pipelines.caption.rerank import Ranked, caption_and_rerank
from pipelines.core import registry, runtime
from pipelines.core.batching import batcher
from pipelines.core.io import load_image

from . import examples
from .common import (BATCHED, BATCHED_CONCURRENCY, GPU, GPU_CONCURRENCY, image_input, model_choice, request_dir,
                     require, user_errors)

BEAM_SEARCH, SAMPLING = "beam search", "sampling"
DEFAULTS = CaptionOptions()
CANDIDATES = 3  # the tab's default: enough to see re-ranking at work
CLIP_WEIGHT = 0.3  # the captioner leads; CLIP settles near-ties (min-max rescaling makes any gap count)
CANDIDATE_HEADERS = ["caption", "captioner score", "CLIP similarity", "fused score"]
BATCH_HEADERS = ["file", "caption", "captioner score", "CLIP similarity", "fused score", "problem"]
DIGITS = 4  # scores are shown, and written to CSV/JSON, rounded to this many decimals


class Setting(gr.Slider):
    """A slider that leaves range checks to the pipeline, so an API caller's out-of-range value gets our message."""

    is_template = True  # render with the stock Slider front end

    def preprocess(self, payload):
        return payload


@user_errors
def caption(image: str | None, model: str | None = None, decoding: str = BEAM_SEARCH, candidates: float = CANDIDATES,
            beams: float | None = 3, length_penalty: float = DEFAULTS.length_penalty,
            repetition_penalty: float = DEFAULTS.repetition_penalty, min_new_tokens: float = DEFAULTS.min_new_tokens,
            max_new_tokens: float | None = 30, top_p: float = DEFAULTS.top_p,
            temperature: float = DEFAULTS.temperature, seed: float | None = 0, prefix: str = "",
            clip_weight: float = CLIP_WEIGHT):
    """One image -> (the best caption, its candidates as a table with the three scores, best first)."""
    require(image, "Upload an image (or pick an example) to caption")
    options = _options(decoding, candidates, beams, length_penalty, repetition_penalty, min_new_tokens,
                       max_new_tokens, top_p, temperature, seed, prefix)
    captioner, weight = pipelines.load("caption", model or None), _number(clip_weight)
    if options.get("sample"):  # a seeded draw must not depend on which other visitors' images share its batch
        [ranked] = _captioned([image], captioner, weight, **options)
    else:  # one forward pass, shared with other visitors' images that arrive at the same moment
        [ranked] = batcher.run(_captioned, [image], captioner=captioner, clip_weight=weight, **options)
    rows = [[r.text, *_scores(r)] for r in ranked]
    return ranked[0].text, {"headers": CANDIDATE_HEADERS, "data": rows}


@user_errors
def caption_batch(files: list[str] | None, model: str | None = None, decoding: str = BEAM_SEARCH,
                  candidates: float = CANDIDATES, beams: float | None = 3,
                  length_penalty: float = DEFAULTS.length_penalty,
                  repetition_penalty: float = DEFAULTS.repetition_penalty,
                  min_new_tokens: float = DEFAULTS.min_new_tokens, max_new_tokens: float | None = 30,
                  top_p: float = DEFAULTS.top_p, temperature: float = DEFAULTS.temperature, seed: float | None = 0,
                  prefix: str = "", clip_weight: float = CLIP_WEIGHT, progress=gr.Progress()):
    """Many images -> (a table: file, best caption, its scores, problem; [CSV file, JSON file]), in upload order.

    A file that is not a usable image gets its reason in the problem column; the others are still captioned.
    """
    if not files:
        raise gr.Error("Upload one or more images (PNG, JPEG, WebP, GIF, BMP or TIFF) to caption",
                       title="Missing input")
    options = _options(decoding, candidates, beams, length_penalty, repetition_penalty, min_new_tokens,
                       max_new_tokens, top_p, temperature, seed, prefix)
    progress(0, desc="Loading the models")
    captioner, space = pipelines.load("caption", model or None), fusion.shared_space()
    captioner.options(**options)  # a bad option is refused before any file is read
    problems = {i: problem for i, path in enumerate(files) if (problem := _unusable(path))}
    usable = [i for i in range(len(files)) if i not in problems]
    if not usable:
        listed = "\n".join(f"- {Path(files[i]).name}: {problem}" for i, problem in problems.items())
        raise gr.Error(f"None of the files could be captioned:\n{listed}", title="Cannot use these files")
    ranked = caption_and_rerank(captioner, [files[i] for i in usable], space, _number(clip_weight),
                                progress=lambda done: progress(done, desc=f"Captioning {len(usable)} images"),
                                **options)
    best = dict(zip(usable, (r[0] for r in ranked)))
    rows = []
    for i, path in enumerate(files):
        result = [best[i].text, *_scores(best[i]), ""] if i in best else ["", None, None, None, problems[i]]
        rows.append([Path(path).name, *result])
    return {"headers": BATCH_HEADERS, "data": rows}, _downloads(rows)


def _unusable(path: str) -> str | None:
    # Decoded here only to check; the pipeline decodes it again a batch at a time, so many photos never sit in
    # memory at once.
    try:
        load_image(path)
    except pipelines.InputError as error:
        return str(error)
    return None


def _captioned(images: list, captioner, clip_weight, **options):
    return caption_and_rerank(captioner, images, fusion.shared_space(), clip_weight, **options)


def _options(decoding, candidates, beams, length_penalty, repetition_penalty, min_new_tokens, max_new_tokens,
             top_p, temperature, seed, prefix) -> dict:
    """The pipeline options the controls ask for; beam controls count for beam search, sampling ones for sampling."""
    if decoding not in (BEAM_SEARCH, SAMPLING):
        raise pipelines.InputError(f"Decoding must be '{BEAM_SEARCH}' or '{SAMPLING}'; got {decoding!r}")
    options = dict(num_candidates=_whole(candidates), min_new_tokens=_whole(min_new_tokens),
                   max_new_tokens=_whole(max_new_tokens), repetition_penalty=_number(repetition_penalty),
                   prefix=prefix or "")
    if decoding == SAMPLING:
        return options | dict(sample=True, top_p=_number(top_p), temperature=_number(temperature),
                              seed=_whole(seed))
    return options | dict(num_beams=_whole(beams), length_penalty=_number(length_penalty))


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
    """The chosen model's own beams and maximum length (registry names; other models get the generic ones)."""
    try:
        spec = registry.resolve("caption", model, runtime.settings().profile)
    except pipelines.PipelineError:
        return GENERIC_DEFAULTS
    return MODEL_DEFAULTS.get(spec.backend, GENERIC_DEFAULTS)


def build() -> None:
    defaults = model_defaults(pipelines.default_model("caption"))
    with gr.Tabs():
        with gr.Tab("One image", id="caption-one"):
            with gr.Row():
                with gr.Column():
                    image = image_input(label="Image", elem_id="caption-image")
                    button = gr.Button("Caption", variant="primary")
                with gr.Column():
                    text = gr.Textbox(label="Caption", interactive=False, buttons=["copy"], elem_id="caption-text")
                    table = gr.Dataframe(headers=CANDIDATE_HEADERS, label="Candidates, best first", wrap=True,
                                         interactive=False, elem_id="caption-candidates")
            gr.Examples(examples.images(), inputs=image, label="Examples: toy scenes and photos")
        with gr.Tab("Several images", id="caption-many"):
            with gr.Row():
                with gr.Column():
                    uploads = gr.File(file_count="multiple", label="Images",  # any file: each gets our verdict
                                      elem_id="caption-files")
                    batch_button = gr.Button("Caption all", variant="primary")
                with gr.Column():
                    batch_table = gr.Dataframe(headers=BATCH_HEADERS, label="Captions", wrap=True,
                                               interactive=False, max_height=400, elem_id="caption-batch")
                    downloads = gr.File(label="Download (CSV, JSON)", file_count="multiple", interactive=False,
                                        elem_id="caption-downloads")
    model, decoding, controls, beam_row, sampling_row = _option_controls(defaults)
    decoding.change(lambda d: (gr.update(visible=d == BEAM_SEARCH), gr.update(visible=d == SAMPLING)),
                    inputs=decoding, outputs=[beam_row, sampling_row], api_visibility="private", queue=False)
    model.change(lambda name: tuple(model_defaults(name)[key] for key in ("num_beams", "max_new_tokens")),
                 inputs=model, outputs=[controls["beams"], controls["max_new_tokens"]], api_visibility="private",
                 queue=False)
    inputs = [model, decoding, *controls.values()]
    gr.on([button.click], caption, inputs=[image, *inputs], outputs=[text, table],
          api_name="caption", concurrency_id=BATCHED, concurrency_limit=BATCHED_CONCURRENCY)
    gr.on([batch_button.click], caption_batch, inputs=[uploads, *inputs], outputs=[batch_table, downloads],
          api_name="caption_batch", concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)


def _option_controls(defaults: dict):
    """Model, decoding, and the other controls by name in the handlers' order; the two decoding-specific rows."""
    with gr.Accordion("Options", open=False, elem_id="caption-options"):
        model = model_choice("caption")
        with gr.Row():
            decoding = gr.Radio([BEAM_SEARCH, SAMPLING], value=BEAM_SEARCH, label="Decoding",
                                elem_id="caption-decoding",
                                info="beam search: the likeliest captions; sampling: varied ones")
            candidates = Setting(1, MAX_CANDIDATES, value=CANDIDATES, step=1, label="Candidates",
                                 info="captions per image (beam search: at most one per beam)")
        with gr.Row(visible=True) as beam_row:
            beams = Setting(1, 10, value=defaults["num_beams"], step=1, label="Beams", info="1 = greedy")
            length_penalty = Setting(-2, 2, value=DEFAULTS.length_penalty, step=0.1, label="Length penalty",
                                     info="> 1 favours longer captions, < 1 shorter")
        with gr.Row(visible=False) as sampling_row:
            top_p = Setting(0.05, 1, value=DEFAULTS.top_p, step=0.05, label="Top-p",
                            info="sample from the likeliest tokens that add up to this probability")
            temperature = Setting(0.1, 2, value=DEFAULTS.temperature, step=0.1, label="Temperature",
                                  info="< 1 safer, > 1 more varied")
            seed = gr.Number(0, precision=0, label="Seed", info="same seed, same candidates",
                             elem_id="caption-seed")
        with gr.Row():
            repetition_penalty = Setting(1, 2, value=DEFAULTS.repetition_penalty, step=0.05,
                                         label="Repetition penalty", info="> 1 discourages repeated words")
            min_new_tokens = Setting(0, MAX_NEW_TOKENS, value=DEFAULTS.min_new_tokens, step=1,
                                     label="Min new tokens")
            max_new_tokens = Setting(1, MAX_NEW_TOKENS, value=defaults["max_new_tokens"], step=1,
                                     label="Max new tokens")
        prefix = gr.Textbox("", label="Start the caption with", placeholder="a photography of (BLIP only)")
        clip_weight = Setting(0, 1, value=CLIP_WEIGHT, step=0.05, label="Re-ranking: CLIP weight",
                              info="0 = the captioner's score only, 1 = CLIP image-text similarity only")
    controls = dict(candidates=candidates, beams=beams, length_penalty=length_penalty,
                    repetition_penalty=repetition_penalty, min_new_tokens=min_new_tokens, max_new_tokens=max_new_tokens,
                    top_p=top_p, temperature=temperature, seed=seed, prefix=prefix, clip_weight=clip_weight)
    return model, decoding, controls, beam_row, sampling_row
