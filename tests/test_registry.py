import pytest

import pipelines
from pipelines.core import registry
from pipelines.core.errors import UnknownModelError


def test_each_task_lists_its_models_and_profiles_name_registered_ones():
    for task in ("caption", "search", "ask", "transcribe"):
        names = pipelines.available_models(task)
        for profile in registry.PROFILES:
            assert registry.profile_default(task, profile) in names


def test_default_profile_uses_the_documented_hub_checkpoints():
    resolve = lambda task: registry.resolve(task, None, "default").source  # noqa: E731
    assert resolve("caption") == "Salesforce/blip-image-captioning-base"
    assert resolve("ask") == "Salesforce/blip-vqa-base"
    assert resolve("search") == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # open_clip ViT-B-32 laion2b_s34b_b79k
    assert registry.resolve("transcribe", None, "default").fallback == "whisper-tiny.en-embedded"


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(UnknownModelError) as info:
        registry.resolve("caption", "no-such-model", "toy")
    assert "toy-blip" in str(info.value) and "blip-base" in str(info.value)


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(UnknownModelError, match="caption, search, ask, transcribe"):
        pipelines.load("paint")


def test_a_local_directory_or_hub_id_is_accepted(tmp_path):
    local = registry.resolve("caption", str(tmp_path), "toy")
    assert local.source == str(tmp_path) and local.backend == "auto" and not local.is_hub
    hub = registry.resolve("caption", "someone/some-captioner", "toy")
    assert hub.is_hub and hub.backend == "auto"


def test_a_blank_model_name_means_the_profile_default_not_the_working_directory():
    for blank in ("", "   ", "\t"):
        assert registry.resolve("caption", blank, "toy").name == registry.profile_default("caption", "toy")
