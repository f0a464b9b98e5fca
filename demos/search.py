"""Search tab: find images by words, by an image, or by both; your own gallery; zero-shot classification."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

import pipelines
from pipelines.core import budget
from pipelines.core.batching import batcher
from pipelines.core.limits import limits
from pipelines.jobs.catalogue import Catalogue, shown_copy
from pipelines.search.classify import DEFAULT_TEMPLATE, classifier
from pipelines.search.gallery import Gallery
from pipelines.search.retrieval import Query, SearchOptions, SearchResult
from pipelines.search.uploads import image_store, show_copies_in, upload_store

from . import examples, fairness
from .common import (
    BATCHED,
    BATCHED_CONCURRENCY,
    GPU,
    GPU_CONCURRENCY,
    RadioInput,
    image_input,
    model_choice,
    option_slider,
    require,
    user_errors,
)

ABOUT = (
    "Find images by words, by an example image, or by both (an image plus how the results should differ), in the "
    "bundled examples or your own pictures; or see which of your labels fits an image."
)
TOP_K = 6  # results the tab shows at first: one row of the gallery
EXAMPLES_PER_PAGE = 16  # example thumbnails: every toy scene on one page
EXAMPLES, MINE, CATALOGUE = "examples", "mine", "catalogue"  # gallery choices
CATALOGUE_ENV = "MM_CATALOGUE"  # a catalogue folder (python -m pipelines.jobs index SOURCE OUT): OUT
LABELS = {  # zero-shot labels to start from, per profile
    "toy": "circle, square, triangle",  # right on every toy example
    "default": "cat, horse, rocket, coffee, coins, astronaut, motorcycle, galaxy",
}
NEGATIVE = {True: "red", False: "people"}  # the "but not" box's hint, toy profile or not
EMPTY_GALLERY = "Your gallery is empty. Upload images or a zip of images, then choose **My images** above."
SHOWN_FOLDER = "search-results"  # in Gradio's cache: the copies of visitors' uploads their results show
CATALOGUE_FOLDER = "catalogue-results"  # in Gradio's cache: copies of the catalogue images results show

show_copies_in(Path(get_upload_folder()) / SHOWN_FOLDER)  # served by Gradio, as any file in its cache
_catalogue: list[Catalogue | None] = []  # the catalogue the tab offers, once opened (open_catalogue)


def open_catalogue(folder: str | Path | None) -> Catalogue | None:
    """Offers the catalogue in ``folder`` (an index job's OUT, or None: no catalogue) as a read-only gallery in the
    tabs built from now on (app.py's --catalogue). Opened once: a missing or unbuilt catalogue stops the start."""
    _catalogue[:] = [Catalogue(Path(folder)) if folder else None]
    return _catalogue[0]


def catalogue() -> Catalogue | None:
    """The catalogue offered: the one opened, else the one MM_CATALOGUE names (None: none)."""
    if not _catalogue:
        open_catalogue(os.environ.get(CATALOGUE_ENV) or None)
    return _catalogue[0]


def _gallery(choice: str, mine: Gallery | None) -> Gallery | None:
    if choice == CATALOGUE and catalogue() is not None:
        return catalogue()
    if choice == MINE:
        if not mine:
            raise pipelines.InputError(
                "Your gallery is empty: there is nothing to search. Upload images (or a "
                "zip) under 'My images' first, or search the bundled examples"
            )
        return mine
    if choice not in (EXAMPLES, None, ""):
        names = [EXAMPLES, MINE] + [CATALOGUE] * (catalogue() is not None)
        raise pipelines.InputError(f"Unknown gallery {choice!r}; expected one of {', '.join(map(repr, names))}")
    return None  # the bundled examples


def _run(query: Query, top_k, gallery: str, model: str | None, mine: Gallery | None):
    searcher = pipelines.load("search", model or None)
    # Images new to this model are encoded first, within the request's time budget; the rest on the next search.
    seconds = limits().request_seconds
    chosen = _gallery(gallery, mine)
    [result] = batcher.run(searcher, [query], top_k=int(top_k), gallery=chosen, encode_seconds=seconds)
    if isinstance(chosen, Catalogue):
        return _catalogue_results(result)
    shown = [(_shown(hit.path), f"{hit.label} · {hit.score:.2f}") for hit in result.hits]
    gone = sum(path is None for path, _ in shown)
    return [(path, caption) for path, caption in shown if path is not None], _details(result, gone)


def _shown(path: str) -> str | None:
    """The file the browser gets for a result. An uploaded image is never served from the store: the store copies
    it into Gradio's cache, in a folder of this gallery's own named by a keyed hash, and only this visitor is sent
    its address; "Clear my gallery", a dropped session and the sweep delete the copies with the images. None if
    the image was swept from the store meanwhile."""
    if not Path(path).resolve().is_relative_to(image_store().resolve()):
        return path  # a bundled example: served from the allowed assets folder, as Gradio does
    copy = upload_store().shown_copy(path)
    return str(copy) if copy is not None else None


def _catalogue_results(result: SearchResult):
    """A catalogue's hits: the images the server can read (copied into Gradio's cache to be served), and the paths
    of those it cannot (URLs, files on other machines), listed under the results (in public mode a file's name
    only, never a path on the server nor a URL, which can hold a password or a signed URL's token)."""
    folder = Path(get_upload_folder()) / CATALOGUE_FOLDER
    shown, listed = [], []
    for hit in result.hits:
        copy = shown_copy(hit.path, folder)
        if copy is not None:
            shown.append((copy, f"{hit.label} · {hit.score:.2f}"))
        elif pipelines.runtime.settings().public:  # strangers get no server paths, and no URL's user or token
            listed.append(f"- {hit.label} · {hit.score:.2f}")
        else:
            listed.append(f"- `{hit.path}` · {hit.score:.2f}")
    details = _details(result)
    if listed:
        named = "by name" if pipelines.runtime.settings().public else "by path as the job read them"
        details += f"\n\nNot readable from this server, {named}:\n" + "\n".join(listed)
    return shown, details


def _details(result: SearchResult, gone: int = 0) -> str:
    lines = [f"{len(result.hits) - gone} closest to *{result.query}* (cosine similarity in CLIP space)."]
    notices = list(result.notices)
    if gone:
        notices.append(
            f"{gone} of your images {'was' if gone == 1 else 'were'} removed from the server "
            f"(uploads are kept {limits().upload_hours:g} hours). Upload {'it' if gone == 1 else 'them'} again"
        )
    return "\n\n".join(lines + [f"⚠️ {notice}" for notice in notices])


@user_errors
def search(
    query: str,
    top_k: float = TOP_K,
    gallery: str = EXAMPLES,
    negative: str = "",
    model: str | None = None,
    mine: Gallery | None = None,
):
    require(query, f"Type what to look for, e.g. '{examples.queries()[0]}'")
    return _run(Query(text=query, negative=negative or None), top_k, gallery, model, mine)


@user_errors
def search_image(
    image: str | None,
    top_k: float = TOP_K,
    gallery: str = EXAMPLES,
    model: str | None = None,
    mine: Gallery | None = None,
):
    require(image, "Give an image (upload, paste or pick an example) to find similar ones")
    return _run(Query(image=image), top_k, gallery, model, mine)


@user_errors
def search_composed(
    image: str | None,
    text: str = "",
    image_weight: float = Query().image_weight,
    negative: str = "",
    top_k: float = TOP_K,
    gallery: str = EXAMPLES,
    model: str | None = None,
    mine: Gallery | None = None,
):
    require(image, "Give an image to start from; the text says how the results should differ")
    require(text, "Type how the results should differ from the image, e.g. 'blue' or 'at night'")
    query = Query(text=text, image=image, image_weight=float(image_weight), negative=negative or None)
    return _run(query, top_k, gallery, model, mine)


@user_errors
def add_images(
    files: list[str] | None,
    model: str | None = None,
    mine: Gallery | None = None,
    request: gr.Request = None,  # given by Gradio: the galleries of one client address share a byte quota
    progress=gr.Progress(),
):
    require(files or None, "Choose images (or a zip of images) to add to your gallery")
    mine = mine if mine is not None else Gallery("my images")
    progress(0, desc=f"Storing {len(files)} file{'s' * (len(files) != 1)}")  # each stage shows, not a frozen 0%
    report = mine.add_uploads(files, address=fairness.client_address(request) if request is not None else None)
    progress(0, desc="Loading the search model")
    space = pipelines.load("search", model or None).space
    prepared = mine.prepare(
        space, progress=lambda done, total, what: progress(done / total, desc=what), deadline=budget.Deadline()
    )
    report.encoded, report.cached = prepared.encoded, prepared.cached
    report.problems += prepared.problems
    report.stopped = " ".join(filter(None, [report.stopped, prepared.stopped]))
    status = f"**{len(mine)} image{'s' * (len(mine) != 1)} in your gallery.** {report.summary()}"
    return mine, status, MINE if len(mine) else EXAMPLES


def clear_images(mine: Gallery | None = None):
    """Deletes the visitor's uploaded images (files, embeddings, indexes) from the server and empties the gallery."""
    deleted = "Your images were deleted from the server. " if mine else ""
    if mine is not None:
        mine.clear()
    return None, deleted + EMPTY_GALLERY, EXAMPLES


def forget_gallery(mine: Gallery | None) -> threading.Thread | None:
    """Gradio drops a session's state (the tab closed an hour ago, or its time to live passed): its files go too,
    on a thread of their own (this runs on the server's event loop). Returns the thread, if any."""
    if not isinstance(mine, Gallery):
        return None
    thread = threading.Thread(target=mine.clear, name="forget-gallery", daemon=True)
    thread.start()
    return thread


@user_errors
def classify(
    image: str | None, labels: str = LABELS["toy"], template: str = DEFAULT_TEMPLATE, model: str | None = None
) -> dict[str, float]:
    require(image, "Give an image to classify")
    [result] = batcher.run(classifier(model or None), [image], labels=labels, template=template)
    return result.scores


@dataclass(frozen=True)
class SearchTab:
    """What other tabs need of the Search tab: its query box, and a way to run its search after their events."""

    query: gr.Textbox
    search_event: dict  # search's fn, inputs, outputs and lane, as the tab's own Search button runs it

    def search_after(self, event: gr.events.Dependency) -> gr.events.Dependency:
        """Runs the search (with the tab's current gallery, count and model) once ``event`` has succeeded, e.g. one
        that filled the query box from another tab."""
        return event.success(**self.search_event, api_visibility="private")


def build() -> SearchTab:
    """Lays out the tab; returns its query box and search, so other tabs can hand words to it and search them."""
    upload_store().maybe_sweep()  # at app start: uploads older than the upload age go (then on uploads)
    # This browser session's own gallery: no other visitor can see it. Its files are deleted with the state
    # (the tab closed an hour ago, or no upload for the upload age), else swept by age.
    mine = gr.State(None, time_to_live=limits().upload_hours * 3600, delete_callback=forget_gallery)
    gr.Markdown(ABOUT, elem_classes="tab-about")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=280):
            query = gr.Textbox("", label="Find images of…", placeholder=examples.queries()[0], elem_id="search-query")
            negative = gr.Textbox(
                "",
                label="…but not (optional)",
                placeholder=NEGATIVE[examples.profile() == "toy"],
                elem_id="search-negative",
            )
            search_button = gr.Button("Search", variant="primary")
            query_examples = gr.Examples(
                [[q] for q in examples.queries()],
                inputs=query,
                label="Example queries: click one to search",
                elem_id="search-query-examples",
            )
        with gr.Column(scale=2, min_width=280):
            image = image_input(label="…or like this image", elem_id="search-image", height=180)
            with gr.Row():
                image_button = gr.Button("Find similar", size="md", min_width=120)
                composed_button = gr.Button("Image + text", size="md", min_width=120)
            image_examples = gr.Examples(
                examples.images(),
                inputs=image,
                label="Example images: click one to find similar ones",
                examples_per_page=EXAMPLES_PER_PAGE,
                elem_id="search-image-examples",
            )
    details = gr.Markdown(elem_id="search-details")
    gallery = gr.Gallery(
        label="Closest images", columns=6, height="auto", object_fit="contain", elem_id="search-results"
    )
    offered = catalogue()
    choices = [("Bundled examples", EXAMPLES), ("My images", MINE)]
    if offered is not None:
        choices.append((f"Catalogue: {offered.name} ({len(offered):,} images)", CATALOGUE))
    with gr.Row():
        source = RadioInput(
            choices,
            value=CATALOGUE if offered is not None else EXAMPLES,
            label="Gallery",
            elem_id="search-gallery",
        )
        top_k = option_slider(SearchOptions, "top_k", value=TOP_K, label="Results")
        weight = option_slider(Query, "image_weight", label="Image weight (image + text)")
        model = model_choice("search")
    with gr.Accordion("My images: search your own pictures (visible only to you)", open=False):
        files = gr.File(
            file_count="multiple",
            file_types=["image", ".zip"],
            label="Images or a zip of images",
            elem_id="search-upload",
        )
        with gr.Row():
            add_button = gr.Button("Add to my gallery", variant="primary")
            clear_button = gr.Button("Clear my gallery")
        status = gr.Markdown(EMPTY_GALLERY, elem_id="search-status")
    with gr.Accordion("Zero-shot classification: which of your labels fits an image", open=True):
        with gr.Row():
            with gr.Column(min_width=240):
                classify_image = image_input(label="Image", elem_id="classify-image", height=200)
                classify_examples = gr.Examples(
                    examples.images(),
                    inputs=classify_image,
                    label="Example images: click one to classify it",
                    examples_per_page=EXAMPLES_PER_PAGE,
                    elem_id="classify-examples",
                )
            with gr.Column(min_width=240):
                labels = gr.Textbox(
                    LABELS.get(pipelines.runtime.settings().profile, LABELS["default"]),
                    label="Labels, comma-separated",
                    elem_id="classify-labels",
                )
                template = gr.Textbox(DEFAULT_TEMPLATE, label="Prompt template", info="{} is replaced by each label")
                classify_button = gr.Button("Classify", variant="primary")
            scores = gr.Label(num_top_classes=5, label="Probabilities", elem_id="classify-result", min_width=240)

    model_event = dict(concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)
    batched = dict(concurrency_id=BATCHED, concurrency_limit=BATCHED_CONCURRENCY)  # joined by pipelines.core.batching
    outputs = [gallery, details]
    by_words = dict(fn=search, inputs=[query, top_k, source, negative, model, mine], outputs=outputs, **batched)
    by_image = dict(fn=search_image, inputs=[image, top_k, source, model, mine], outputs=outputs, **batched)
    to_classify = dict(fn=classify, inputs=[classify_image, labels, template, model], outputs=scores, **batched)
    gr.on([search_button.click, query.submit, negative.submit], **by_words, api_name="search")
    image_button.click(**by_image, api_name="search_image")
    composed_button.click(
        search_composed,
        inputs=[image, query, weight, negative, top_k, source, model, mine],
        outputs=outputs,
        api_name="search_composed",
        **batched,
    )
    add_button.click(
        add_images, inputs=[files, model, mine], outputs=[mine, status, source], api_name="add_images", **model_event
    )
    clear_button.click(clear_images, inputs=[mine], outputs=[mine, status, source], api_name="clear_images")
    classify_button.click(**to_classify, api_name="classify")
    # An example chip runs its example once it has filled the input, in the same lane as the button.
    for chosen, event in [(query_examples, by_words), (image_examples, by_image), (classify_examples, to_classify)]:
        examples.run_on_click(chosen, event)
    return SearchTab(query=query, search_event=by_words)
