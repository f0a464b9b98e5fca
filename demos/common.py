"""What every tab shares: input components that leave decoding to pipelines.core.io, and error translation: a
refusal reaches a visitor as one titled toast, with the failed event's result displays cleared."""

from __future__ import annotations

import contextlib
import copy
import functools
import html
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
from gradio.context import LocalContext

import pipelines
import pipelines.core.batching
from pipelines.core import hub, runtime, turns
from pipelines.core.options import declarations

from . import fairness
from .fairness import BATCHED as BATCHED  # the tabs name their lanes from here
from .fairness import GPU

log = logging.getLogger(__name__)

OUTPUTS = Path(tempfile.gettempdir()) / f"mm-studio-outputs-{os.getpid()}"  # files written for downloads
OUTPUT_AGE = 24 * 3600  # seconds a request's files are kept: Gradio copies them into its cache when it answers

# GPU: events that run a model on their own (not through the batcher) take turns in this lane. Two at once, and
# one address runs at most one of them (demos/fairness.py): a visitor's job starts while another's longest allowed
# job still runs, instead of waiting for it.
# The cost: up to two whole-model jobs' buffers in memory at once (the limits bound each), sharing the CPU cores.
GPU_CONCURRENCY = 2
# BATCHED: events whose requests pipelines.core.batching joins into shared forward passes: side by side, up to one
# batch.
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


# Only an API caller can send a value a control refuses (out of its range, not a number, not one of its choices).
# Gradio's own refusal is in its words (or an internal error) with a traceback in the server log; these controls
# refuse it with our message instead, naming the control by its label and what it takes, logged as one warning line.
# Subclasses, because Gradio checks inputs in preprocess, before an event's validator or handler runs. Each keeps
# the stock front end (is_template) and has no __init__ of its own: Gradio sends the front end the props named in
# __init__'s signature.
_REFUSED = (gr.Error, TypeError, ValueError)  # out of range; compared with a non-number; NaN rounded to a whole number
_LISTED = 12  # choices named in a refusal; the API page lists them all


def _refusing_politely(stock: type) -> type:
    """``stock`` (a gr component class) whose own refusal of a value (preprocess) becomes ours: rendered by the stock
    front end (is_template), with no __init__ of its own, so the props sent to the browser are the stock ones."""

    class Polite(stock):
        is_template = True

        def preprocess(self, payload):
            try:
                return super().preprocess(payload)
            except _REFUSED:
                raise _refusal(self, payload) from None

    Polite.__name__ = Polite.__qualname__ = f"{stock.__name__}Input"
    return Polite


SliderInput = _refusing_politely(gr.Slider)
NumberInput = _refusing_politely(gr.Number)
RadioInput = _refusing_politely(gr.Radio)
DropdownInput = _refusing_politely(gr.Dropdown)


def _refusal(control: gr.components.Component, payload) -> gr.Error:
    """'Results must be a number from 1 to 24; got 99. Send such a number and try again.', logged as one line."""
    if isinstance(control, (gr.Slider, gr.Number)):
        accepted, fix = _number_range(control), "such a number"
    else:
        values = [value for _, value in control.choices]
        listed = ", ".join(map(repr, values[:_LISTED]))
        more = len(values) > _LISTED
        accepted = f"one of the {len(values)} values the API page lists ({listed}, ...)" if more else f"one of {listed}"
        fix = "one of those values"
    shown = repr(payload)
    shown = shown if len(shown) <= 60 else shown[:60] + "..."
    message = f"{control.label or 'This input'} must be {accepted}; got {shown}. Send {fix} and try again."
    log.warning("input refused: %s", _one_line(message))
    return gr.Error(message, title="Cannot use this input", print_exception=False)


def _number_range(control: gr.Slider | gr.Number) -> str:
    noun = "a whole number" if control.precision == 0 else "a number"
    low, high = control.minimum, control.maximum
    if low is not None and high is not None:
        return f"{noun} from {low:g} to {high:g}"
    if low is not None:
        return f"{noun} of at least {low:g}"
    return f"{noun} of at most {high:g}" if high is not None else noun


def option_slider(
    options_class: type, name: str, *, label: str, value=None, component: type = SliderInput, **kwargs
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
    """A model picker: registry names; outside public mode also a typed hub id or local directory.

    A typed name reaches pipelines.load in both modes: in public mode it refuses any name not in the list, with the
    list (gr.Dropdown's own refusal would be in Gradio's words, with a traceback in the log)."""
    public = runtime.settings().public
    return gr.Dropdown(
        choices=pipelines.available_models(task),
        value=pipelines.default_model(task),
        allow_custom_value=True,
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
    gets the GPU on ZeroGPU Spaces: ``on_gpu`` wraps the translated handler, because ZeroGPU passes only gr.Error
    messages back from its worker. One whose events are heavy (``release_memory_after``) hands the memory its request
    freed back to the system after it finishes. Each call is a request in ``turns``: long work that started before
    it gives way to it between steps (and its own work runs in the background when the queue says its visitor never
    pauses: ``fairness.in_background``).
    """
    signature = inspect.signature(handler)

    def after() -> None:
        if handler in _heavy:
            memory_release.request()

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streamed(*args, **kwargs):
            # Gradio may run each step of a stream on another thread: each says whose it is
            ticket = turns.begin(background=fairness.in_background())
            try:
                with _translated(handler.__name__):
                    _refuse_unusable_numbers(signature, args, kwargs)
                    with turns.acting_for(ticket):
                        turns.let_foreground_pass()
                    steps = handler(*args, **kwargs)
                    while True:
                        with turns.acting_for(ticket):
                            update = next(steps, _DONE)
                        if update is _DONE:
                            return
                        yield update
            finally:
                turns.end(ticket)
                after()

        translated = streamed
    else:

        @functools.wraps(handler)
        def wrapped(*args, **kwargs):
            try:
                with _translated(handler.__name__), turns.request(background=fairness.in_background()):
                    _refuse_unusable_numbers(signature, args, kwargs)
                    return handler(*args, **kwargs)
            finally:
                after()

        translated = wrapped
    translated.refuses = True  # clear_results_on_failure finds these events (functools.wraps copies it onward)
    return on_gpu(translated) if gpu else translated


_DONE = object()  # what next() gives for a finished stream


_heavy: set = set()  # handlers (as written, before user_errors) whose requests are followed by a memory release


def release_memory_after(demo: gr.Blocks, lane: str = GPU) -> None:
    """Hand memory back to the system after the requests of ``demo``'s events in ``lane`` (by default the
    whole-model jobs: batches, recordings, galleries, the heat map, Studio), whose buffers are large; not after each
    small request, where a full garbage collection (~0.2 s, holding the GIL) would slow everyone for little memory.
    Call once the demo's events are declared."""
    for event in demo.fns.values():
        if event.concurrency_id == lane:
            _heavy.add(inspect.unwrap(event.fn))  # the handler as written: user_errors' wrappers name it


RELEASE_INTERVAL = 5.0  # seconds at least between two memory releases: a burst of heavy requests shares one


class MemoryRelease:
    """Runs ``runtime.release_memory()`` on a background thread when asked (after a heavy request): the visitor's
    answer does not wait for it, and it runs at most once every ``interval`` seconds; requests that finish while it
    runs or waits share the next run, so the last one is always followed by one."""

    def __init__(self, interval: float = RELEASE_INTERVAL):
        self.interval = interval
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last = -math.inf  # time.monotonic() of the last run
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
            time.sleep(max(0.0, self._last + self.interval - time.monotonic()))
            self._wanted.clear()
            try:
                runtime.release_memory()
            except Exception:  # never let the helper thread die on a platform quirk
                log.exception("releasing memory failed")
            self._last = time.monotonic()
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


@contextlib.contextmanager
def _translated(name: str):
    """Refusals logged as one warning line; an error id where the visitor is shown one, so they can quote it."""
    try:
        yield
    except gr.Error as error:  # our own refusal (e.g. a missing input): the message is already the user's
        log.warning("%s refused: %s", name, _one_line(error.message))
        error.message = _shortened(error.message)
        error.print_exception = False
        raise _shown(error)
    except pipelines.PipelineError as error:  # the visitor's input or choice
        # In public mode a model that would not load is a server problem (only registry names load there):
        # visitor_message logs its details under the error id the visitor is shown.
        if not (runtime.settings().public and isinstance(error, pipelines.ModelLoadError)):
            log.warning("%s refused: %s", name, _one_line(str(error)))
        message = _not_here_yet(error) or pipelines.visitor_message(error)
        raise _shown(gr.Error(_shortened(message), title=_title(error), print_exception=False)) from None
    except Exception:  # a bug or a library failure: the details go to the log, never to the visitor
        reference = pipelines.error_id()
        log.error("unexpected failure in %s [error id %s]", name, reference, exc_info=True)
        raise gr.Error(
            f"Something went wrong on the server (error id {reference}). The app is still running: try another "
            "input; if it keeps happening, report the error id.",
            title="Unexpected error",
            print_exception=False,
        ) from None


def _shown(refusal: gr.Error) -> gr.Error:
    """``refusal`` shown to the visitor as one toast that opens with its title; the error itself, which API callers
    get with its message unchanged, is then not shown a second time.

    Gradio 6.31's page heads every toast with its level ("Error", "Warning") and shows no title of its own, so the
    title leads the toast's text. A warning's toast, not an error's: a refusal is the visitor's to fix, and the page
    then marks no output of the event with a red "Error" pill (clear_results_on_failure removes those, and the
    stale results under them)."""
    if LocalContext.event_id.get(None) is not None:  # outside an event (a script, a test) nobody sees a toast
        lines = html.escape(str(refusal.message)).replace("\n", "<br>")
        gr.Warning(f"<strong>{html.escape(refusal.title)}.</strong> {lines}", title=refusal.title)
        refusal.visible = False
    return refusal


def clear_results_on_failure(demo: gr.Blocks) -> None:
    """When an event of ``demo`` whose handler is wrapped in ``user_errors`` fails, its result displays go back to
    what the page first showed (empty), so no earlier result stays on screen under the refusal, and the red "Error"
    pills Gradio puts on them go too. Left as they are: controls the visitor fills in (an output that is also some
    event's input, unless it is read-only), gr.State, and displays that start with something in them (a note on
    what a gallery holds says what is still true). Call once the demo's events are declared; calling it again adds
    nothing for the events it already covers."""
    filled_in = {id(block) for event in demo.fns.values() for block in event.inputs}
    covered = {event.trigger_after for event in demo.fns.values() if getattr(event.fn, "clears_results", False)}
    for event in list(demo.fns.values()):
        if not _refuses(event.fn) or event._id in covered:
            continue
        results = [block for block in event.outputs if _result_display(block, event, filled_in)]
        if results:
            demo.default_config.set_event_trigger(
                [],
                _blanks([_as_first_shown(block) for block in results]),
                inputs=[],
                outputs=results,
                trigger_after=event._id,
                trigger_only_on_failure=True,
                queue=False,  # a reset of the page's own values: no model, no need to wait in line
                postprocess=False,  # the values are the page's own, as Gradio sent them
                show_progress="hidden",
                api_visibility="private",
            )


def _refuses(fn) -> bool:
    while fn is not None:
        if getattr(fn, "refuses", False):
            return True
        fn = getattr(fn, "__wrapped__", None)
    return False


def _result_display(block, event, filled_in: set[int]) -> bool:
    if not isinstance(block, gr.components.Component) or isinstance(block, gr.State):
        return False
    if any(block is given for given in event.inputs):
        return False
    read_only = block.interactive is False or (block.interactive is None and id(block) not in filled_in)
    return read_only and _empty(block.get_config().get("value"))


def _empty(value) -> bool:
    if isinstance(value, dict) and "data" in value:  # a table: its headers, no rows
        return not value["data"]
    return value is None or value == "" or value == [] or value == {}


def _as_first_shown(block: gr.components.Component) -> dict:
    config = block.get_config()
    return {"__type__": "update", "value": config.get("value"), "visible": config.get("visible", True)}


def _blanks(values: list[dict]):
    def clear_results():
        fresh = copy.deepcopy(values)  # Gradio takes each update's value out of the dict it is given
        return fresh if len(fresh) > 1 else fresh[0]

    clear_results.clears_results = True
    return clear_results


MAX_MESSAGE_CHARS = 4000  # what a visitor is shown of one message: a listing of many files fits, an echo does not


def _shortened(message: str) -> str:
    message = str(message)
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + " …"


def _one_line(message: str, limit: int = 2000) -> str:
    """A message as one log line: newlines folded, cut at ``limit`` characters (a visitor may send a huge text)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _not_here_yet(error: Exception) -> str | None:
    """For a model that is simply not downloaded to a server that cannot reach the Hub: a short message pointing
    at the tab's panel (demos/readiness.py), which already shows the commands, instead of repeating them."""
    if isinstance(error, pipelines.ModelLoadError) and error.cause == hub.OFFLINE_CAUSE:
        return (
            f"The model {error.model} is not on this server yet, and the server cannot reach the Hugging Face Hub "
            "to fetch it. The panel at the top of this tab says how to get it."
        )
    return None


def _title(error: Exception) -> str:
    if _not_here_yet(error):
        return "Model not here yet"
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


def note_update(*lines: str):
    """A note under a result: its non-empty lines, shown; hidden when there is nothing to say."""
    text = "\n\n".join(line for line in lines if line)
    return gr.update(value=text, visible=bool(text))


def percent(probability: float) -> str:
    """A probability as a whole percentage that never reads as certain or impossible when it is neither:
    0.002 -> '<1%', 0.9963 -> '>99%', 0.12 -> '12%'."""
    if 0 < probability < 0.005:
        return "<1%"
    if 0.995 <= probability < 1:
        return ">99%"
    return f"{probability:.0%}"
