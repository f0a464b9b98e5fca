"""Fusion lab tab: labelled (image, text) examples in; small fusion heads trained live on the frozen shared CLIP
space, compared on held-out examples, tried on a new pair, and downloaded."""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from pipelines.core.limits import limits
from pipelines.core.options import declarations
from pipelines.fusion import lab, lab_tasks, shared_space

from . import examples
from .common import GPU, GPU_CONCURRENCY, NumberInput, image_input, percent, request_dir, require, user_errors

ABOUT = (
    "Teach the shared CLIP space a new task from a handful of examples: each an image, a short text and a label. "
    "Five small heads train on the frozen encoders in seconds, side by side: **image only**, **text only**, **sum "
    "fusion** (each modality projected and added), **concat fusion** (both concatenated into one layer) and **late "
    "fusion** (one head per modality, their scores averaged). See which one wins on examples it never trained on."
)
HOW = (
    f"Fill in the table (image file name, text, label), or upload images with a CSV of `image,text,label` rows "
    f"(or a zip of both), or pick a bundled task; the table's rows and a CSV's train together (**Empty table** "
    f"to use only yours). Each label needs at least {lab.MIN_PER_LABEL} examples; at most "
    f"{{limit}} examples per training. **Held-out accuracy** is grouped {lab.FOLDS}-fold: each example is "
    "predicted by heads trained without it, and examples that share an image or a text are held out together."
)
HEADS_KEPT_SECONDS = 3600  # seconds a visitor's trained heads are kept after their training
PLOT_SECONDS = 0.25  # how often the loss curves redraw while training
LOSS, ACCURACY = "training loss", "held-out accuracy"
PREDICTION_HEADERS = ["head", "prediction", "confidence"]
EMPTY_TABLE = [["", "", ""]]  # one blank row to type into
HEAD_CHOICES = [(lab.HEAD_TITLES[head], head) for head in lab.HEADS]


def _rows(table) -> list[list]:
    """The examples table as rows, from the browser (a list of lists) or the API ({"headers", "data"} or a list)."""
    if table is None:
        return []
    if isinstance(table, pd.DataFrame):
        return table.astype(object).where(table.notna(), "").values.tolist()
    if isinstance(table, dict):
        table = table.get("data") or []
    if not isinstance(table, list) or not all(isinstance(row, (list, tuple)) for row in table):
        raise gr.Error("The examples table must be rows of [image, text, label]", title="Cannot use this input")
    return [list(row) for row in table]


def _losses(curves: dict[str, list[tuple[int, float]]]) -> pd.DataFrame:
    """Loss curves as the line plot reads them: one row per (head, step), about a hundred steps per head."""
    records = []
    for head, points in curves.items():
        every = max(1, len(points) // 100)
        records += [
            {"step": step, LOSS: loss, "head": lab.HEAD_TITLES[head]}
            for index, (step, loss) in enumerate(points)
            if index % every == 0 or index == len(points) - 1
        ]
    frame = pd.DataFrame.from_records(records, columns=["step", LOSS, "head"])
    return frame.astype({"step": "int64", LOSS: "float64", "head": "str"})  # numbers plot on a numeric axis


def _status(step: lab.Step, examples_count: int) -> str:
    if step.phase == "encoding":
        return f"Encoding {examples_count} examples with the shared CLIP space…"
    doing = f"held-out fold {step.fold} of {lab.FOLDS}" if step.phase == "held-out" else "all examples"
    return f"Training **{lab.HEAD_TITLES[step.head]}** on {doing} ({step.done} of {step.total} trainings done)…"


def _summary(result: lab.LabResult) -> str:
    best = result.best()
    lines = [
        f"**Best: {lab.HEAD_TITLES[best]}, {percent(result.scores[best].accuracy)} held-out accuracy** on "
        f"{result.examples} examples; always guessing the commonest label scores {percent(result.chance)}.",
        " · ".join(
            f"{lab.HEAD_TITLES[head]} {percent(score.accuracy)} ({score.correct}/{score.total})"
            for head, score in result.scores.items()
        ),
        f"Accuracy {result.split}. The downloaded heads were trained on all examples (seed {result.options.seed}).",
    ]
    return "\n\n".join(lines)


def _confusion(result: lab.LabResult) -> pd.DataFrame:
    columns = ["head", "true label", *[f"predicted {label}" for label in result.labels]]
    rows = []
    for head, score in result.scores.items():
        for index, label in enumerate(result.labels):
            rows.append([lab.HEAD_TITLES[head], label, *[int(n) for n in score.confusion[index]]])
    return pd.DataFrame(rows, columns=columns)


def _accuracies(result: lab.LabResult) -> pd.DataFrame:
    return pd.DataFrame(
        [{"head": lab.HEAD_TITLES[head], ACCURACY: score.accuracy} for head, score in result.scores.items()],
        columns=["head", ACCURACY],
    )


@user_errors
def train_fusion(table=None, files: list[str] | None = None, heads: list[str] | None = None, seed: float = 0):
    """Examples -> live loss curves, then held-out accuracy per head, a summary, a confusion table and the heads'
    files (safetensors + JSON). Streams: each update redraws the curves."""
    chosen = tuple(heads) if heads is not None else lab.HEADS
    seed = 0 if seed is None else seed
    options = lab.LabOptions(heads=chosen, seed=int(seed) if isinstance(seed, float) and seed.is_integer() else seed)
    options.verify()
    labelled = lab.read_examples(_rows(table), files or [], resolve=lab_tasks.resolve)
    lab.check_examples(labelled)  # before the CLIP space loads
    yield None, None, None, "Loading the shared CLIP space…", None, None
    space = shared_space()
    curves: dict[str, list[tuple[int, float]]] = {}
    shown = 0.0
    for event in lab.training(labelled, options, space):
        if isinstance(event, lab.LabResult):
            files_out = [str(path) for path in event.heads.save(request_dir("fusion-heads"))]
            yield event.heads, _losses(curves), _accuracies(event), _summary(event), _confusion(event), files_out
            return
        if event.phase == "training":
            curves.setdefault(event.head, []).append((event.step, event.loss))
        # The plot's colours are fixed by its first frame: it waits until every head has its starting point.
        started = len(curves) == len(set(options.heads))
        now = time.monotonic()
        if now - shown >= PLOT_SECONDS or (event.phase == "training" and event.step in (0, options.steps)):
            shown = now
            plot = _losses(curves) if started else gr.skip()
            yield gr.skip(), plot, gr.skip(), _status(event, len(labelled)), gr.skip(), gr.skip()


@user_errors
def predict_fusion(image: str | None, text: str = "", heads=None):
    """A new image + text -> each trained head's prediction and confidence, side by side."""
    if heads is None:
        raise gr.Error("Train the heads first (press Train above), then try them here", title="No trained heads yet")
    require(image, "Give an image to try the trained heads on")
    require(text, "Type a text to go with the image")
    [result] = heads([(image, text)])
    rows = [[lab.HEAD_TITLES[p.head], p.label, percent(p.confidence)] for p in result.predictions]
    return pd.DataFrame(rows, columns=PREDICTION_HEADERS)


def load_task(name: str | None):
    """A bundled task's rows into the examples table."""
    if not name:
        return gr.skip()
    return pd.DataFrame(lab_tasks.rows(name), columns=list(lab.COLUMNS))


def build() -> None:
    tasks = examples.fusion_tasks()
    first = tasks[0][1] if tasks else None
    # This visitor's trained heads, for the "try it" box: kept an hour after the last training (about 1 MB each
    # with a real CLIP), not as long as the session.
    trained = gr.State(None, time_to_live=HEADS_KEPT_SECONDS)
    gr.Markdown(ABOUT, elem_classes="tab-about")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            with gr.Row():
                task = gr.Dropdown(tasks, value=first, label="Bundled task", elem_id="fusion-task", scale=3)
                use_task = gr.Button("Use this task", size="md", scale=1, min_width=120)
                empty = gr.Button("Empty table", size="md", scale=1, min_width=120)
            table = gr.Dataframe(
                load_task(first) if first else None,
                headers=list(lab.COLUMNS),
                datatype=["str", "str", "str"],
                type="array",
                interactive=True,
                label="Examples (image file name, text, label)",
                max_height=320,
                elem_id="fusion-examples",
            )
            files = gr.File(
                file_count="multiple",
                file_types=["image", ".csv", ".zip"],
                label="Images, a CSV (image,text,label) or a zip of both",
                elem_id="fusion-upload",
            )
        with gr.Column(scale=2, min_width=280):
            gr.Markdown(HOW.format(limit=limits().fusion_examples))
            heads = gr.CheckboxGroup(
                HEAD_CHOICES, value=list(lab.HEADS), label="Heads to train", elem_id="fusion-heads"
            )
            seed = NumberInput(0, precision=0, minimum=0, label="Seed", info=declarations(lab.LabOptions)["seed"].help)
            train_button = gr.Button("Train", variant="primary", elem_id="fusion-train")
    status = gr.Markdown(label="Summary", elem_id="fusion-summary")
    with gr.Row(equal_height=False):
        losses = gr.LinePlot(
            None, x="step", y=LOSS, color="head", label="Training loss per head", height=280, elem_id="fusion-loss"
        )
        accuracy = gr.BarPlot(
            None,
            x="head",
            y=ACCURACY,
            color="head",
            y_lim=[0, 1],
            sort=[lab.HEAD_TITLES[head] for head in lab.HEADS],
            colors_in_legend=[],  # the axis names each bar
            label=f"Held-out accuracy ({lab.FOLDS}-fold)",
            height=280,
            elem_id="fusion-accuracy",
        )
    with gr.Row(equal_height=False):
        confusion = gr.Dataframe(label="Confusion (held-out): true label × predicted", elem_id="fusion-confusion")
        download = gr.File(
            label="Trained heads (safetensors + JSON config)", file_count="multiple", elem_id="fusion-download"
        )
    with gr.Accordion("Try it: run the trained heads on a new image and text", open=True):
        with gr.Row(equal_height=False):
            with gr.Column(min_width=240):
                try_image = image_input(label="Image", elem_id="fusion-try-image", height=200)
                try_text = gr.Textbox(label="Text", elem_id="fusion-try-text")
                try_button = gr.Button("Predict", variant="primary", elem_id="fusion-predict")
                gr.Examples(examples.fusion_pairs(), inputs=[try_image, try_text], label="Pairs to try")
            predictions = gr.Dataframe(
                headers=PREDICTION_HEADERS, label="Each head's prediction", elem_id="fusion-predictions"
            )

    model_event = dict(concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)
    use_task.click(load_task, inputs=task, outputs=table, api_visibility="private")
    empty.click(lambda: pd.DataFrame(EMPTY_TABLE, columns=list(lab.COLUMNS)), outputs=table, api_visibility="private")
    train_button.click(
        train_fusion,
        inputs=[table, files, heads, seed],
        outputs=[trained, losses, accuracy, status, confusion, download],
        api_name="train_fusion",
        **model_event,
    )
    gr.on(
        [try_button.click, try_text.submit],
        predict_fusion,
        inputs=[try_image, try_text, trained],
        outputs=predictions,
        api_name="predict_fusion",
        **model_event,
    )
