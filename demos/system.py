"""System panel: where models run, which are loaded, library versions (in public mode: no server paths, library
versions or failure details; see pipelines.system_info and loaded_models)."""

from __future__ import annotations

import gradio as gr

import pipelines


def report() -> str:
    info = pipelines.system_info()
    rows = "\n".join(f"| {key} | {value} |" for key, value in info.items())
    loaded = pipelines.loaded_models()
    models = "\n".join(f"- {line}" for line in loaded) if loaded else "- none yet (models load on first use)"
    return f"| | |\n|---|---|\n{rows}\n\n**Loaded models**\n\n{models}"


def build(demo: gr.Blocks) -> None:
    panel = gr.Markdown()
    refresh = gr.Button("Refresh", size="sm")
    refresh.click(report, outputs=panel, api_name="system")
    demo.load(report, outputs=panel, api_visibility="private")
