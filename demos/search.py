"""Search tab: a text query in, the closest gallery images out (CLIP similarity)."""

from __future__ import annotations

import gradio as gr

import pipelines

from .common import GPU, GPU_CONCURRENCY, model_choice, require, user_errors

EXAMPLE_QUERIES = ["a red circle", "a blue triangle", "a yellow square", "a cat", "a cup of coffee", "a rocket"]


@user_errors
def search(query: str, top_k: float = 6, model: str | None = None) -> list[tuple[str, str]]:
    require(query, "Type what to look for, e.g. 'a red circle'")
    searcher = pipelines.load("search", model or None)
    [result] = searcher([query], top_k=int(top_k))
    return [(hit.path, f"{hit.label} · {hit.score:.2f}") for hit in result.hits]


def build() -> gr.Textbox:
    """Lays out the tab; returns the query box so other tabs can send text to it."""
    with gr.Row():
        query = gr.Textbox(label="Find images of…", placeholder="a red circle", scale=4, elem_id="search-query")
        button = gr.Button("Search", variant="primary", scale=1)
    with gr.Accordion("Options", open=False):
        top_k = gr.Slider(1, 24, value=6, step=1, label="Results")
        model = model_choice("search")
    gallery = gr.Gallery(label="Closest images (cosine similarity in CLIP space)", columns=6, height="auto",
                         elem_id="search-results")
    gr.Examples([[q] for q in EXAMPLE_QUERIES], inputs=query)
    gr.on([button.click, query.submit], search, inputs=[query, top_k, model], outputs=gallery,
          api_name="search", concurrency_id=GPU, concurrency_limit=GPU_CONCURRENCY)
    return query
