"""What every tab shares: input components that leave decoding to pipelines.core.io, and error translation."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

import pipelines
import pipelines.core.batching
from pipelines.core import runtime
from pipelines.core.options import declarations

log = logging.getLogger(__name__)

OUTPUTS = Path(tempfile.gettempdir()) / f"mm-studio-outputs-{os.getpid()}"  # files written for downloads
OUTPUT_AGE = 24 * 3600  # seconds a request's files are kept: Gradio copies them into its cache when it answers

GPU = "model-device"  # events that run a model on their own (not through the batcher below) take turns
# Two at once, and one address runs at most one of them (demos/fairness.py): a visitor's job starts while another's
# longest allowed job still runs, instead of waiting for it.
GPU_CONCURRENCY = 2
# Events whose requests pipelines.core.batching joins into shared forward passes: side by side, up to one batch.
BATCHED = "batched-models"
BATCHED_CONCURRENCY = pipelines.core.batching.batcher.max_batch

try:  # Hugging Face ZeroGPU Spaces attach a GPU only while a function decorated with spaces.GPU runs
    from spaces import GPU as on_gpu
except ImportError:  # anywhere else: nothing to attach

    def on_gpu(handler):
        return handler


class ImageInput(gr.Image):
    """gr.Image that hands our code the uploaded file's path without opening it first.

    gr.Image decodes an upload with PIL before the handler runs, so a bad file fails inside Gradio with a
    generic error; pipelines.core.io.load_image gives a message that says what is wrong.
    """

    is_template = True  # render with the stock Image front end
    # No __init__ of our own: Gradio sends the front end the props named in __init__'s signature.

    def preprocess(self, payload):
        if payload is None or (payload.url or "").startswith("data:") or payload.path is None:
            return super().preprocess(payload)
        return str(payload.path)


def image_input(**kwargs) -> ImageInput:
    return ImageInput(type="filepath", sources=["upload", "clipboard", "webcam"], **kwargs)


def option_slider(
    options_class: type, name: str, *, label: str, value=None, component: type = gr.Slider, **kwargs
) -> gr.Slider:
    """A slider for one option: its span, step and help come from the option's declaration in the pipelines
    (``pipelines.core.options``); ``value`` None starts it at the option's default."""
    declared = declarations(options_class)[name]
    low, high = declared.span
    value = getattr(options_class(), name) if value is None else value
    return component(low, high, value=value, step=declared.increment, label=label, info=declared.help, **kwargs)


def audio_input(**kwargs) -> gr.Audio:
    """Microphone or file; format=None keeps the upload as it is (pipelines.core.io decodes every container)."""
    return gr.Audio(sources=["upload", "microphone"], type="filepath", format=None, **kwargs)


class ModelDropdown(gr.Dropdown):
    """gr.Dropdown that hands our code any typed name, listed or not.

    With ``allow_custom_value=False`` (public mode) gr.Dropdown refuses an unlisted name sent through the API in
    its own words, with a traceback in the server log; pipelines.load refuses it with the list of names instead.
    """

    is_template = True  # render with the stock Dropdown front end
    # No __init__ of our own: Gradio sends the front end the props named in __init__'s signature.

    def preprocess(self, payload):
        if payload is None or isinstance(payload, str):
            return payload
        return super().preprocess(payload)


def model_choice(task: str) -> gr.Dropdown:
    """A model picker: registry names; outside public mode also a typed hub id or local directory."""
    public = runtime.settings().public
    return ModelDropdown(
        choices=pipelines.available_models(task),
        value=pipelines.default_model(task),
        allow_custom_value=not public,
        label="Model",
        info="A name from the list"
        if public
        else "A name from the list, a Hugging Face Hub id (owner/name) or a local directory",
    )


def user_errors(handler, *, gpu: bool = True):
    """Turn any failure into a gr.Error with a useful message; the server keeps serving. Generators (streaming
    handlers) too.

    Numbers that are not finite (NaN, inf: only the API can send them) are refused, naming the input, before the
    handler runs. A user's mistake is logged as one warning line; an unexpected failure as an error with its
    traceback, under an error id the visitor is shown instead of any detail. A handler that runs a model (``gpu``)
    hands the memory its request freed back to the system when it finishes, and gets the GPU on ZeroGPU Spaces:
    ``on_gpu`` wraps the translated handler, because ZeroGPU passes only gr.Error messages back from its worker.
    """
    signature = inspect.signature(handler)
    after = memory_release.request if gpu else None
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streamed(*args, **kwargs):
            try:
                with _translated(handler.__name__):
                    _refuse_unusable_numbers(signature, args, kwargs)
                    yield from handler(*args, **kwargs)
            finally:
                if after:
                    after()

        translated = streamed
    else:

        @functools.wraps(handler)
        def wrapped(*args, **kwargs):
            try:
                with _translated(handler.__name__):
                    _refuse_unusable_numbers(signature, args, kwargs)
                    return handler(*args, **kwargs)
            finally:
                if after:
                    after()

        translated = wrapped
    return on_gpu(translated) if gpu else translated


class MemoryRelease:
    """Runs ``runtime.release_memory()`` on a background thread once a model request finishes: the visitor's answer
    does not wait for it (a full garbage collection takes ~0.2 s with the models loaded), and requests that finish
    while it runs share the next run."""

    def __init__(self):
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed runs (tests wait on it)

    def request(self) -> None:
        self._wanted.set()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="memory-release", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                runtime.release_memory()
            except Exception:  # never let the helper thread die on a platform quirk
                log.exception("releasing memory failed")
            self.runs += 1


memory_release = MemoryRelease()


def _refuse_unusable_numbers(signature: inspect.Signature, args: tuple, kwargs: dict) -> None:
    """An InputError naming the first argument that is a float but not a finite number."""
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:  # not called as declared: the handler itself will say so
        return
    for name, value in bound.arguments.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise pipelines.InputError(f"{name} must be a number, not {value}. Give a number in its range")


def error_id() -> str:
    """A short random id that ties what a visitor is shown to the server's log line."""
    return pipelines.error_id()


@contextlib.contextmanager
def _translated(name: str):
    try:
        yield
    except gr.Error as error:  # our own refusal (e.g. a missing input): the message is already the user's
        log.warning("%s refused [error id %s]: %s", name, error_id(), _one_line(error.message))
        error.print_exception = False
        raise
    except pipelines.ModelLoadError as error:  # in public mode a server problem: only registry names load there
        reference = error_id()
        log.warning("%s: model unavailable [error id %s]: %s", name, reference, _one_line(str(error)))
        if runtime.settings().public:
            raise gr.Error(
                pipelines.unavailable_message(reference),
                title="Model unavailable",
                print_exception=False,
            ) from None
        raise gr.Error(str(error), title=_title(error), print_exception=False) from None
    except pipelines.PipelineError as error:  # the visitor's input or choice
        log.warning("%s refused [error id %s]: %s", name, error_id(), _one_line(str(error)))
        raise gr.Error(str(error), title=_title(error), print_exception=False) from None
    except Exception:  # a bug or a library failure: the details go to the log, never to the visitor
        reference = error_id()
        log.error("unexpected failure in %s [error id %s]", name, reference, exc_info=True)
        raise gr.Error(
            f"Something went wrong on the server (error id {reference}). The app is still running: try another "
            "input; if it keeps happening, report the error id.",
            title="Unexpected error",
            print_exception=False,
        ) from None


def _one_line(message: str, limit: int = 2000) -> str:
    """A message as one log line: newlines folded, cut at ``limit`` characters (a visitor may send a huge text)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _title(error: Exception) -> str:
    if isinstance(error, pipelines.ModelLoadError):
        return "Model unavailable"
    if isinstance(error, pipelines.UnknownModelError):
        return "Unknown model"
    return "Cannot use this input"


def require(value, message: str) -> None:
    """Refuse a missing main input with a message that says what to do (logged as one line, no traceback)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(message, title="Missing input", print_exception=False)


def request_dir(kind: str) -> Path:
    """A fresh directory for one request's files; those of requests older than OUTPUT_AGE are removed first."""
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    expired = time.time() - OUTPUT_AGE
    for old in OUTPUTS.iterdir():
        with contextlib.suppress(OSError):  # another request may be sweeping it at the same moment
            if old.stat().st_mtime < expired:
                shutil.rmtree(old)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=OUTPUTS))
