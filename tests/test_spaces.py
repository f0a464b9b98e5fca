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
