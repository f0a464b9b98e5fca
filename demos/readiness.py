"""Each tab's models panel: which models the tab needs that are not ready yet, and how to get them.

Hidden once the tab's models are ready. Otherwise, per model: "loading…" while the warm-up prepares it; its
registry name, Hub id and download size when it is not on this machine, with a "Download now" button where the
Hub can be reached (registry models only: the button takes no name) or the exact command where it cannot; a
download's progress; or why a present model failed to load. The panels, and the System panel, refresh once a
second while something is loading or downloading (a ``gr.Timer`` that stops itself).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import gradio as gr

from pipelines import readiness
from pipelines.core import hub, runtime

TASK_LABELS = {"caption": "Caption", "search": "Search", "ask": "Ask", "chat": "Chat", "transcribe": "Transcribe"}
# What each tab runs: Caption ranks its candidates with the CLIP space (the search model), Ask draws its heat map
# with it, Chat transcribes spoken messages, the Fusion lab trains on the CLIP space, Studio runs every model.
TAB_TASKS = {
    "studio": ("caption", "search", "ask", "transcribe"),
    "caption": ("caption", "search"),
    "search": ("search",),
    "ask": ("ask", "search"),
    "chat": ("chat", "transcribe"),
    "transcribe": ("transcribe",),
    "fusion-lab": ("search",),
}
log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0  # how often open pages look again while a model loads or downloads
BUSY = (readiness.LOADING, readiness.DOWNLOADING)
HIDDEN = (readiness.READY, readiness.PRESENT)  # nothing to say: the panel is hidden
DOWNLOAD_LANE = "model-download"  # downloads run beside the model jobs, not in their turns
DOWNLOADS_AT_ONCE = 4
PROGRESS_SECONDS = 0.5  # how often a download's panel shows the bytes so far


@dataclass
class Panel:
    tab: str
    tasks: tuple[str, ...]
    box: gr.Column
    text: gr.Markdown
    button: gr.Button

    @property
    def outputs(self) -> list:
        return [self.box, self.text, self.button]


def build(tab: str) -> Panel:
    """The models panel at the top of ``tab`` (a key of TAB_TASKS); hidden until the page asks how things stand."""
    tasks = TAB_TASKS[tab]
    with gr.Column(visible=False, variant="panel", elem_id=f"{tab}-models", elem_classes="models-panel") as box:
        text = gr.Markdown(elem_id=f"{tab}-models-text")
        button = gr.Button("Download now", variant="primary", size="sm", visible=False, elem_id=f"{tab}-download")
    panel = Panel(tab, tasks, box, text, button)
    button.click(
        _downloader(tasks),
        outputs=panel.outputs,
        api_name=f"download_{tab}_models",
        api_visibility="undocumented",  # a page's button; scripts use `python -m pipelines.download`
        concurrency_id=DOWNLOAD_LANE,
        concurrency_limit=DOWNLOADS_AT_ONCE,
        show_progress="hidden",  # the panel's own text says how far the download is
    )
    return panel


def install(demo: gr.Blocks, panels: list[Panel], system_panel: gr.Markdown, system_report) -> None:
    """Fill the panels (and the System panel, with ``system_report()``) when a page opens, and again once a second
    while anything loads or downloads."""
    timer = gr.Timer(REFRESH_SECONDS, active=False)
    outputs = [component for panel in panels for component in panel.outputs] + [system_panel, timer]

    def refresh():
        statuses = {status.task: status for status in readiness.statuses()}
        values = [value for panel in panels for value in _panel_values(panel.tasks, statuses)]
        busy = readiness.warming() or any(status.state in BUSY for status in statuses.values())
        return [*values, system_report(list(statuses.values())), gr.Timer(active=busy)]

    for trigger in (demo.load, timer.tick):
        trigger(
            refresh,
            outputs=outputs,
            api_visibility="private",
            concurrency_id="models-panel",
            concurrency_limit=None,  # a quick look at the disk and at memory: never waits behind a model job
            show_progress="hidden",
        )


def _panel_values(tasks: tuple[str, ...], statuses: dict[str, readiness.Status]) -> list:
    """(the box, its text, the Download button) for a panel over ``tasks``."""
    waiting = [statuses[task] for task in tasks if statuses[task].state not in HIDDEN]
    if not waiting:
        return [gr.Column(visible=False), gr.Markdown(""), gr.Button(visible=False)]
    absent = [status.task for status in waiting if status.state == readiness.ABSENT]
    unfetched = absent + [  # a download that failed can be tried again
        status.task for status in waiting if status.state == readiness.FAILED and not readiness.present(status.task)
    ]
    reachable = bool(unfetched) and hub.reachable()
    loading = [_named(status) for status in waiting if status.state == readiness.LOADING]
    lines = [f"**Loading** {', '.join(loading)}… requests wait until their model is ready."] if loading else []
    lines += [_line(status) for status in waiting if status.state in (readiness.DOWNLOADING, readiness.FAILED)]
    if absent:
        lines.append(_absent(absent, reachable))
    size = _total_size(unfetched) if reachable else None
    label = f"Download now ({_size(size)})" if size else "Download now"
    return [
        gr.Column(visible=True),
        gr.Markdown("\n\n".join(lines)),
        gr.Button(label, visible=reachable, interactive=True),
    ]


def panel_text(tasks: tuple[str, ...]) -> str:
    """What the panel over ``tasks`` says now ("" when it is hidden)."""
    statuses = {task: readiness.status(task) for task in tasks}
    return _panel_values(tasks, statuses)[1].value or ""


def _named(status: readiness.Status) -> str:
    return f"`{status.model}` ({TASK_LABELS[status.task]})"


def _line(status: readiness.Status) -> str:
    """One line for a model that is downloading or failed."""
    if status.state == readiness.DOWNLOADING:
        done = f": {_size(status.done_bytes)} of {_size(status.total_bytes)}" if status.total_bytes else ""
        percent = f" ({status.fraction:.0%})" if status.fraction is not None else ""
        return f"**Downloading** {_named(status)}{done}{percent}…"
    return f"**Not usable:** {_named(status)}: {status.message}"


def _absent(tasks: list[str], reachable: bool) -> str:
    """Which models are not here (registry name, Hub id, size when the Hub lists it), and how to get them."""
    parts, fallbacks = [], []
    for task in tasks:
        spec = readiness.spec(task)
        size = readiness.download_size(task) if reachable else None
        facts = ", ".join(part for part in (spec.source, _size(size) if size else "") if part)
        parts.append(f"`{spec.name}` ({facts}) for {TASK_LABELS[task]}")
        if spec.fallback:
            fallbacks.append(f"{TASK_LABELS[task]} runs `{spec.fallback}` until then.")
    text = f"**Not on this server yet:** {'; '.join(parts)}. {' '.join(fallbacks)}".rstrip()
    if reachable:
        return text + " Download them here:"
    return text + " " + _command(tasks)  # one paragraph, then the commands: the tab's examples stay in view


def _command(tasks: list[str]) -> str:
    """The exact commands that bring ``tasks``' models to a machine that cannot reach the Hub."""
    settings = runtime.settings()
    where = "DIR" if settings.public or not settings.models_dir else str(settings.models_dir)
    profile = "" if settings.profile == "default" else f" --profile {settings.profile}"
    fetch = f"python -m pipelines.download{profile} --models-dir {where} --tasks {' '.join(tasks)}"
    start = f"python app.py{profile} --models-dir {where}"
    return (
        f"This server cannot reach the Hugging Face Hub: run the first command on a machine with network, copy "
        f"`{where}` here, and start the app with the second.\n\n```\n{fetch}\n{start}\n```"
    )


def _total_size(tasks: list[str]) -> int | None:
    sizes = [readiness.download_size(task) for task in tasks]
    return None if any(size is None for size in sizes) else sum(sizes)


def _size(count: int | None) -> str:
    if count is None:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _downloader(tasks: tuple[str, ...]):
    def download_models():
        """Fetch this tab's absent registry models from the Hub, then load and run each once; the panel shows
        the bytes downloaded so far, then "Loading", then hides."""
        if not hub.reachable():
            raise gr.Error(
                "This server cannot reach the Hugging Face Hub now; the panel shows the command to run instead.",
                title="Download unavailable",
                print_exception=False,
            )
        done = threading.Event()

        def work():
            try:
                readiness.download(tasks)
            except Exception:  # recorded per model where it can be; anything else is a bug for the log
                log.exception("downloading the models of %s failed", ", ".join(tasks))
            finally:
                done.set()

        threading.Thread(target=work, name="download", daemon=True).start()
        while not done.wait(PROGRESS_SECONDS):
            yield _panel_values(tasks, {task: readiness.status(task) for task in tasks})
        yield _panel_values(tasks, {task: readiness.status(task) for task in tasks})

    return download_models
