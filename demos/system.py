"""System panel: where models run, how far each of the profile's models is (loading, ready, not downloaded), which
are loaded, library versions (in public mode: no server paths, library versions or failure details; see
pipelines.system_info and loaded_models)."""

from __future__ import annotations

import gradio as gr

import pipelines
from pipelines import readiness

STATES = {  # what the panel says of a profile model in each readiness state
    readiness.ABSENT: "not downloaded (its tab says how to get it)",
    readiness.DOWNLOADING: "downloading…",
    readiness.LOADING: "loading…",
    readiness.PRESENT: "on this machine (loads on first use)",
    readiness.READY: "ready",
    readiness.FAILED: "failed to load (its tab says why)",
}


def report(statuses=None) -> str:
    """The panel's text; ``statuses``: the profile models' readiness when the caller has just read it."""
    info = pipelines.system_info()
    rows = "\n".join(f"| {key} | {value} |" for key, value in info.items())
    profile = "\n".join(
        f"- {status.task}: {status.model}: {STATES[status.state]}" for status in statuses or readiness.statuses()
    )
    loaded = pipelines.loaded_models()
    models = "\n".join(f"- {line}" for line in loaded) if loaded else "- none yet (models load on first use)"
    return f"| | |\n|---|---|\n{rows}\n\n**Profile models**\n\n{profile}\n\n**Loaded models**\n\n{models}"


def build() -> gr.Markdown:
    """The panel (filled when a page opens and while models warm up: demos/readiness.install) and its Refresh."""
    panel = gr.Markdown(elem_id="system-report")
    refresh = gr.Button("Refresh", size="sm")
    refresh.click(report, outputs=panel, api_name="system")
    return panel
