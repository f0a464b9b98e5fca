"""The default profile, unmodified, against Hub-shaped repos of every registry Hub id (tests/hublike/repos.py) served
by the Hub look-alike: every hub model loads through `pipelines.load` and answers; the app's tabs answer through
gradio_client; `python -m pipelines.download` fetches the profile; README's `preload_from_hub` names exactly what
the loaders read; and with the Hub out of reach a model says what to do while Transcribe falls back to the
embedded Whisper tiny.en.

The repos hold random weights at shrunk sizes, so answers are checked for shape and provenance, not for sense. What
this module loads is dropped from the process-wide model cache afterwards: the toy tests never see it.
"""

from __future__ import annotations

import os
import re

import pytest
from gradio_client import Client, handle_file

import pipelines
import toyworld
from pipelines import download
from pipelines.core import hub as hub_client
from pipelines.core import registry, runtime
from pipelines.core.errors import ModelLoadError
from tests.hublike import hub_fixture, run_download
from tests.hublike.repos import build_hub

pytestmark = pytest.mark.slow


hub = hub_fixture(scope="module")

HUB_MODELS = [
    (task, name)
    for task in registry.tasks()
    for name in registry.available_models(task)
    if registry.resolve(task, name, "default").is_hub
]
EMBEDDED = "whisper-tiny.en-embedded"


def forget_pipelines() -> None:
    """Drop the pipelines this module loaded (``default_hub`` set aside what was cached before, and puts it back)."""
    runtime.cache.clear()


@pytest.fixture(scope="module")
def default_hub(hub, tmp_path_factory):
    """The look-alike serving every registry repo, and the process in the default profile; afterwards the settings,
    the model cache and the fallbacks are put back exactly as they were."""
    build_hub(hub.root)
    saved_cache = dict(runtime.cache.items())  # e.g. a fallback an offline test cached under a hub id
    forget_pipelines()
    saved_fallbacks = dict(pipelines.fallbacks)
    pipelines.fallbacks.clear()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runtime, "_settings", runtime.settings())
            runtime.configure(profile="default", device="cpu", cache_dir=tmp_path_factory.mktemp("app-cache"))
            yield hub
    finally:
        forget_pipelines()
        for key, value in saved_cache.items():
            runtime.cache.get(key, lambda value=value: value)
        pipelines.fallbacks.clear()
        pipelines.fallbacks.update(saved_fallbacks)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    toyworld.scene(toyworld.HELD_OUT_SEED + 91).image.save(path)
    return path


@pytest.mark.parametrize("task,name", HUB_MODELS, ids=[name for _, name in HUB_MODELS])
def test_every_registry_hub_model_loads_and_answers(default_hub, scene_file, speak, task, name):
    model = pipelines.load(task, name)
    assert model.spec.name == name, f"{name} did not load: {pipelines.fallbacks.get((task, name))}"
    if name.startswith("blip"):  # the real layout passes the acceleration's check against the stock model
        assert [outcome.active for outcome in model.accelerations] == [True], model.description
    if task == "caption":
        [caption] = model([str(scene_file)], max_new_tokens=6)  # random weights never stop on their own
        assert caption.candidates and isinstance(caption.text, str)
    elif task == "search":
        [result] = model(["a red circle"])
        assert result.hits
    elif task == "ask":
        [answer] = model([(str(scene_file), "what color is the shape?")])
        assert answer.ranked and answer.question == "what color is the shape?"
    elif task == "chat":
        question = [{"type": "image", "image": str(scene_file)}, {"type": "text", "text": "What color is the shape?"}]
        reply = model.generate([{"role": "user", "content": question}], max_new_tokens=4)
        assert isinstance(reply.text, str) and reply.turn.new_tokens >= 1 and reply.turn.images_encoded == 1
    else:
        [transcript] = model([str(speak("what color is the shape"))], beam_size=1)
        assert transcript.duration > 1


def test_the_app_answers_with_every_registry_hub_model(default_hub, scene_file, speak):
    """Each tab through gradio_client, with its default model and then with each of its other registry hub models."""
    from tests.serving import serve

    image, speech = handle_file(str(scene_file)), handle_file(str(speak("what color is the shape")))
    calls = {
        "caption": lambda model: client.predict(image, model=model, max_new_tokens=6, api_name="/caption")[0],
        "search": lambda model: client.predict("a red circle", model=model, api_name="/search")[0],
        "ask": lambda model: client.predict(image, model=model, api_name="/ask")[0],
        "transcribe": lambda model: client.predict(speech, model=model, beam_size=1, api_name="/transcribe")[1],
        "chat": lambda model: client.predict(
            "What color is the shape?", [image], model=model, max_new_tokens=4, api_name="/chat"
        ),
    }
    demo = serve("default")
    try:
        client = Client(demo.local_url, verbose=False)
        answers = {(task, None): calls[task](None) for task in calls}  # None: the tab's default model
        answers |= {(task, name): calls[task](name) for task, name in HUB_MODELS}
    finally:
        demo.close()
    assert all(answers.values()), [key for key, answer in answers.items() if not answer]
    assert isinstance(answers["caption", None], str) and isinstance(answers["ask", None], str)
    assert "whisper-small" in answers["transcribe", None] and EMBEDDED not in answers["transcribe", None]
    for task, name in HUB_MODELS:  # the Transcribe details name the model that ran: the hub one, not a fallback
        if task == "transcribe":
            assert name in answers[task, name] and EMBEDDED not in answers[task, name], answers[task, name]


def test_the_download_command_fetches_the_default_profile(default_hub, tmp_path):
    done = run_download(default_hub, tmp_path / "hf-home", "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    for task in registry.tasks():
        spec = registry.resolve(task, None, "default")
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"{task}: "))
        layout = pipelines.pipeline_class(spec).hub_files
        assert layout.chosen_weights(os.listdir(line.removeprefix(f"{task}: "))), line


def readme_preload_lines() -> list[str]:
    front = (registry.PROJECT_ROOT / "README.md").read_text().split("---")[1]
    block = front.split("preload_from_hub:")[1]
    return [m.group(1) for m in re.finditer(r"^\s+- (.+)$", block, re.MULTILINE)]


def test_readme_preload_from_hub_names_what_the_loaders_read(default_hub, tmp_path):
    """Spaces fetches these at build time; they must be the files the loaders then ask for, weights included."""
    done = run_download(default_hub, tmp_path / "hf-home", "--preload-lines")  # the command README names
    assert done.returncode == 0, done.stderr
    assert [line.removeprefix("  - ") for line in done.stdout.splitlines()] == download.preload_lines("default")
    assert readme_preload_lines() == download.preload_lines("default"), (
        "README's preload_from_hub drifted from the loaders; regenerate it with "
        "`python -m pipelines.download --preload-lines` against the Hub"
    )


def test_with_the_hub_out_of_reach_models_say_what_to_do_and_transcribe_falls_back(
    default_hub, tmp_path, speak, monkeypatch
):
    forget_pipelines()  # what the tests above loaded would answer from memory
    monkeypatch.setattr(runtime, "_settings", runtime.settings())
    runtime.configure(models_dir=tmp_path / "empty-cache")  # nothing downloaded: only the Hub could help
    default_hub.offline = True
    hub_client.reset_probe()
    try:
        with pytest.raises(ModelLoadError) as info:
            pipelines.load("caption")
        assert hub_client.OFFLINE_CAUSE in str(info.value) and "python -m pipelines.download" in str(info.value)
        transcriber = pipelines.load("transcribe")
        [transcript] = transcriber([str(speak("what color is the shape"))])
        assert transcriber.spec.name == EMBEDDED and "color" in transcript.text.lower()
        assert pipelines.fallbacks[("transcribe", "whisper-small")][0] == EMBEDDED
    finally:
        default_hub.offline = False
        hub_client.reset_probe()
        forget_pipelines()
        pipelines.fallbacks.pop(("transcribe", "whisper-small"), None)
