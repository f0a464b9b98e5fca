"""What every tab shares: input components that leave decoding to pipelines.core.io, and error translation."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

import pipelines
import pipelines.core.batching
from pipelines.core.options import declarations

log = logging.getLogger(__name__)

OUTPUTS = Path(tempfile.gettempdir()) / f"mm-studio-outputs-{os.getpid()}"  # files written for downloads
OUTPUT_AGE = 24 * 3600  # seconds a request's files are kept: Gradio copies them into its cache when it answers

GPU = "model-device"  # events that run a model on their own (not through the batcher below) take turns
GPU_CONCURRENCY = 1
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


def model_choice(task: str) -> gr.Dropdown:
    """A model picker: registry names, or a typed hub id / local directory."""
    return gr.Dropdown(
        choices=pipelines.available_models(task),
        value=pipelines.default_model(task),
        allow_custom_value=True,
        label="Model",
        info="A name from the list, a Hugging Face Hub id (owner/name) or a local directory",
    )


def user_errors(handler, *, gpu: bool = True):
    """Turn any failure into a gr.Error with a useful message; the server keeps serving. Generators (streaming
    handlers) too.

    A handler that runs a model (``gpu``) also gets the GPU on ZeroGPU Spaces: ``on_gpu`` wraps the translated
    handler, because ZeroGPU passes only gr.Error messages back from its worker process.
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streamed(*args, **kwargs):
            with _translated(handler.__name__):
                yield from handler(*args, **kwargs)

        translated = streamed
    else:

        @functools.wraps(handler)
        def wrapped(*args, **kwargs):
            with _translated(handler.__name__):
                return handler(*args, **kwargs)

        translated = wrapped
    return on_gpu(translated) if gpu else translated


@contextlib.contextmanager
def _translated(name: str):
    try:
        yield
    except gr.Error:
        raise
    except pipelines.PipelineError as error:
        quiet = isinstance(error, pipelines.InputError)  # the user's input, not the server's problem
        raise gr.Error(str(error), title=_title(error), print_exception=not quiet) from error
    except Exception as error:  # a bug or a library failure: log it, tell the user something useful
        log.exception("unexpected failure in %s", name)
        raise gr.Error(
            f"Something went wrong ({type(error).__name__}: {error}). "
            "The app is still running: try another input, or report this with the input you used.",
            title="Unexpected error",
        ) from error


def _title(error: Exception) -> str:
    if isinstance(error, pipelines.ModelLoadError):
        return "Model unavailable"
    if isinstance(error, pipelines.UnknownModelError):
        return "Unknown model"
    return "Cannot use this input"


def require(value, message: str) -> None:
    """Refuse a missing main input with a message that says what to do."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error(message, title="Missing input")


def request_dir(kind: str) -> Path:
    """A fresh directory for one request's files; those of requests older than OUTPUT_AGE are removed first."""
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    expired = time.time() - OUTPUT_AGE
    for old in OUTPUTS.iterdir():
        with contextlib.suppress(OSError):  # another request may be sweeping it at the same moment
            if old.stat().st_mtime < expired:
                shutil.rmtree(old)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=OUTPUTS))
