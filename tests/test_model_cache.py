"""The model cache: typed models (Hub ids, directories) are bounded, least recently used unloaded first; registry
models stay; one checkpoint named two ways loads once."""

from __future__ import annotations

import gc
import shutil
import weakref

import pytest
from safetensors.torch import load_file

import pipelines
from pipelines.core import runtime
from pipelines.core.registry import PROJECT_ROOT

TOY_CAPTIONER = PROJECT_ROOT / "assets/models/toy/blip-caption"
TOY_CLIP = PROJECT_ROOT / "assets/models/toy/clip"


class Model:
    """A stand-in for a loaded pipeline (weak-referenceable, unlike object())."""


def test_past_the_limit_the_least_recently_used_custom_model_goes_and_registry_models_stay(monkeypatch):
    released = []
    monkeypatch.setattr(runtime, "release_memory", lambda: released.append(1))
    cache = runtime.ModelCache(limit=lambda: 2)
    registry_model = cache.get(("registry",), Model)
    a = cache.get(("a",), Model, custom=True)
    cache.get(("b",), Model, custom=True)
    assert cache.get(("a",), Model, custom=True) is a  # a is now the most recently used
    cache.get(("c",), Model, custom=True)
    kept = {key for key, _ in cache.items()}
    assert kept == {("registry",), ("a",), ("c",)} and released == [1]
    for name in "defg":
        cache.get((name,), Model, custom=True)
    assert cache.get(("registry",), Model) is registry_model
    assert cache.custom_keys() == [("f",), ("g",)]


def test_an_unloaded_model_takes_its_parts_and_what_was_derived_from_it(monkeypatch):
    monkeypatch.setattr(runtime, "release_memory", lambda: None)
    cache = runtime.ModelCache(limit=lambda: 1)

    def searcher():
        model = Model()
        model.space = cache.get(("clip", "typed"), Model)  # built while the searcher is being built: a part
        return model

    first = cache.get(("search", "typed"), searcher, custom=True)
    cache.get(("classify", "typed"), Model, derived_from=first.space)  # made from the part, later
    gone = weakref.ref(first.space)
    del first
    cache.get(("search", "other"), Model, custom=True)
    gc.collect()
    assert [key for key, _ in cache.items()] == [("search", "other")]
    assert gone() is None  # nothing in the cache holds the old model any more


def test_an_entry_whose_key_holds_a_number_is_not_taken_for_one_derived_from_an_unloaded_model(monkeypatch):
    monkeypatch.setattr(runtime, "release_memory", lambda: None)
    cache = runtime.ModelCache(limit=lambda: 1)
    typed = cache.get(("search", "typed"), Model, custom=True)
    # A registry entry keyed by a number (a size, a port) that happens to equal the typed model's address.
    thumbnails = cache.get(("thumbnails", id(typed)), Model)
    cache.get(("search", "other"), Model, custom=True)  # unloads the typed model
    assert cache.get(("thumbnails", id(typed)), Model) is thumbnails, "an unrelated registry entry was unloaded"


def test_a_custom_model_that_a_registry_name_reaches_is_kept():
    cache = runtime.ModelCache(limit=lambda: 1)
    shared = cache.get(("same checkpoint",), Model, custom=True)
    assert cache.get(("same checkpoint",), Model) is shared  # now reached by its registry name
    cache.get(("x",), Model, custom=True)
    cache.get(("y",), Model, custom=True)
    assert cache.get(("same checkpoint",), Model) is shared and cache.custom_keys() == [("y",)]


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty model cache for one test (the models it loads are not kept for other tests)."""
    monkeypatch.setattr(runtime, "cache", runtime.ModelCache())
    return runtime.cache


def test_typed_directories_past_the_limit_are_unloaded(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("MM_MAX_CUSTOM_MODELS", "1")
    for name in ("one", "two"):
        shutil.copytree(TOY_CAPTIONER, tmp_path / name)
    registry_model = pipelines.load("caption")
    first = weakref.ref(pipelines.load("caption", str(tmp_path / "one")))
    second = pipelines.load("caption", str(tmp_path / "two"))
    gc.collect()
    assert first() is None, "the least recently used typed model is still held"
    assert pipelines.load("caption", str(tmp_path / "two")) is second
    assert pipelines.load("caption") is registry_model
    assert not any(str(tmp_path / "one") in line for line in pipelines.loaded_models())


def test_a_registry_name_and_its_directory_load_one_model(fresh_cache, monkeypatch):
    from pipelines.caption.blip import BlipCaptioner

    loads = []
    original = BlipCaptioner.load.__func__
    monkeypatch.setattr(BlipCaptioner, "load", classmethod(lambda cls, *a: loads.append(1) or original(cls, *a)))
    monkeypatch.chdir(PROJECT_ROOT)
    by_path = pipelines.load("caption", "assets/models/toy/blip-caption")  # as typed, relative
    assert pipelines.load("caption", "toy-blip") is by_path
    assert pipelines.load("caption", str(TOY_CAPTIONER.resolve())) is by_path
    assert len(loads) == 1 and fresh_cache.custom_keys() == []  # the registry's: never unloaded


def test_open_clip_loads_the_safetensors_beside_a_bin(fresh_cache, tmp_path):
    both = tmp_path / "clip"
    shutil.copytree(TOY_CLIP, both)
    (both / "open_clip_pytorch_model.bin").write_bytes(b"not a checkpoint: reading it would fail")
    space = pipelines.load("search", str(both)).space
    expected = load_file(TOY_CLIP / "open_clip_model.safetensors")
    loaded = space.model.state_dict()
    assert all(loaded[name].float().equal(tensor.float()) for name, tensor in expected.items())
