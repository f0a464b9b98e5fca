"""Packaging for Hugging Face Spaces: the README front matter and the ZeroGPU decorator."""

from __future__ import annotations

import re

import spaces

import pipelines
from demos import common
from tests.conftest import ROOT


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Spaces front matter"
    return dict(re.findall(r"^(\w+): *(.*)$", match.group(1), re.M)), match.group(1)


def test_front_matter_names_a_gradio_app_that_exists_and_the_installed_gradio():
    import gradio

    fields, _ = front_matter()
    assert fields["sdk"] == "gradio" and (ROOT / fields["app_file"]).is_file()
    assert fields["sdk_version"] == gradio.__version__
    assert fields["suggested_hardware"] and fields["python_version"].strip('"').startswith("3.")


def test_front_matter_preloads_every_default_hub_model():
    _, text = front_matter()
    preloaded = set(re.findall(r"^  - (\S+)", text, re.M))
    defaults = {pipelines.registry.resolve(task, None, "default").source for task in pipelines.registry.tasks()}
    assert defaults <= preloaded, defaults - preloaded


def test_model_handlers_ask_zerogpu_for_the_gpu():
    """Off Spaces spaces.GPU hands the function back unchanged, so the app runs the same everywhere."""
    assert common.on_gpu is spaces.GPU


def test_our_message_survives_a_zerogpu_worker(monkeypatch):
    """On ZeroGPU a handler runs in a worker process that sends back only gr.Error messages (any other exception
    becomes its class name), so our translation must happen inside the GPU wrapper."""
    import functools

    import gradio as gr
    import pytest

    def zerogpu_worker(handler):  # spaces.GPU's error handling on ZeroGPU, in brief
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise gr.Error(type(error).__name__) from error

        return run

    monkeypatch.setattr(common, "on_gpu", zerogpu_worker)

    @common.user_errors
    def caption(image):
        raise pipelines.InputError("This file is not an image ('notes.png'). Upload a PNG or JPEG image.")

    with pytest.raises(gr.Error, match="This file is not an image"):
        caption("notes.png")


def test_a_session_gallery_can_travel_to_a_zerogpu_worker(tmp_path):
    """ZeroGPU pickles a handler's arguments, and the Search tab's per-session gallery is one of them."""
    import pickle

    import toyworld
    from pipelines.search.gallery import Gallery

    for i, scene in enumerate(toyworld.scenes(3, start_seed=toyworld.HELD_OUT_SEED + 70)):
        scene.image.save(tmp_path / f"{scene.color}_{scene.shape}_{i}.png")
    gallery = Gallery.from_folder(tmp_path)
    copy = pickle.loads(pickle.dumps(gallery))
    space = pipelines.load("search").space
    query = space.embed_texts(["a red circle"])
    [found], [original] = copy.search(space, query, 3), gallery.search(space, query, 3)
    assert [item.path for item, _ in found] == [item.path for item, _ in original] and len(found) == 3
