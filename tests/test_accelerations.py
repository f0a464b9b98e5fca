"""Every acceleration falls back to the stock model when the library moved under it, and says so.

A changed library is simulated three ways: a newer version than the acceleration was written for, a stock layer whose
signature gained an argument (as transformers 5.24 renamed ``past_key_values`` to ``cache``), and our attention
ignoring its cache (what that rename did to it). Each time the pipeline must run the stock model and give its
results, and the System panel must say which path runs and why.
"""

from __future__ import annotations

import logging
import re

import pytest
import torch

import pipelines
from pipelines.caption.base import generate_kwargs
from pipelines.caption.blip import BlipCaptioner
from pipelines.core import registry, runtime
from pipelines.fast import blip_attention
from pipelines.vqa.blip import BlipVqa

pytestmark = pytest.mark.equivalence


FAMILIES = {"caption": ("toy-blip", BlipCaptioner), "ask": ("toy-blip-vqa", BlipVqa)}
QUESTIONS = ["what color is the shape?", "what shape?", "is there a red circle in the picture?", "what is it?"]


def fresh(task: str):
    """The toy BLIP pipeline for ``task``, loaded anew (not from the process-wide cache)."""
    name, family = FAMILIES[task]
    return family.load(registry.resolve(task, name, "toy"), torch.device("cpu"), torch.float32)


def patched_layers(model) -> list[str]:
    return [type(m).__name__ for m in model.modules() if "forward" in vars(m)]


def stock_captions(captioner, images, options) -> list[list[str]]:
    inputs = captioner.preprocess(images, options)
    with torch.inference_mode():
        outputs = captioner.model.generate(
            **inputs, **generate_kwargs(options), output_logits=True, return_dict_in_generate=True
        )
    return outputs.sequences


def renamed_cache_argument(monkeypatch):
    """The stock text attention as a later transformers might have it: the cache arrives as ``kv_cache``."""
    from transformers.models.blip import modeling_blip_text

    stock = modeling_blip_text.BlipTextSelfAttention.forward

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        kv_cache=None,
        **kwargs,
    ):
        return stock(
            self,
            hidden_states,
            attention_mask,
            encoder_hidden_states,
            encoder_attention_mask,
            cache=kv_cache if kv_cache is not None else kwargs.pop("cache", None),
            **kwargs,
        )

    monkeypatch.setattr(modeling_blip_text.BlipTextSelfAttention, "forward", forward)
    return "kv_cache"


def newer_transformers(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "6.0.0")
    return r"written for transformers >=5\.0,<6\.0"


def attention_ignoring_its_cache(monkeypatch):
    ours = blip_attention._text_attention

    def forgetful(self, hidden_states, *args, cache=None, past_key_values=None, **kwargs):
        return ours(self, hidden_states, *args, **kwargs)

    monkeypatch.setattr(blip_attention, "_text_attention", forgetful)
    # captions: other logits from the second step on; questions: ImageRows read as image states, a shape error
    return "logits at step 1 differ|other tokens|failed on the check batch: RuntimeError: The size of tensor"


def failing_attention(monkeypatch):
    def broken(self, *args, **kwargs):
        raise TypeError("got an unexpected keyword argument 'cache_position'")

    monkeypatch.setattr(blip_attention, "_text_attention", broken)
    return "failed on the check batch: TypeError"


CHANGES = [renamed_cache_argument, newer_transformers, attention_ignoring_its_cache, failing_attention]


def test_on_the_locked_transformers_both_blip_pipelines_run_accelerated():
    for task in FAMILIES:
        pipeline = fresh(task)
        [outcome] = pipeline.accelerations
        assert outcome.active, outcome
        assert "BlipTextSelfAttention" in patched_layers(pipeline.model)
        assert str(outcome) in pipeline.description  # what the System panel lists


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
def test_a_changed_library_gets_the_stock_captioner_and_its_captions(change, monkeypatch, caplog, fresh_scenes):
    expected_reason = change(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="pipelines.fast"):
        captioner = fresh("caption")
    [outcome] = captioner.accelerations
    assert not outcome.active and re.search(expected_reason, outcome.reason)
    assert patched_layers(captioner.model) == []  # every layer runs transformers' own code
    assert captioner.generate == captioner.model.generate
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"{outcome.name} is off, the stock model runs: {outcome.reason}"]
    assert f"off, stock model ({outcome.reason})" in captioner.description

    images = [s.image for s in fresh_scenes[:3]]
    options = captioner.options(num_beams=3, num_candidates=2)
    captions = captioner(images, num_beams=3, num_candidates=2)
    stock = captioner.processor.batch_decode(stock_captions(captioner, images, options), skip_special_tokens=True)
    assert [c.candidates[0].text for c in captions] == [" ".join(t.split()) for t in stock[::2]]
    assert all(s.color in c.text and s.shape in c.text for s, c in zip(fresh_scenes[:3], captions))


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
def test_a_changed_library_gets_the_stock_vqa_model_and_its_answers(change, monkeypatch, fresh_scenes):
    expected_reason = change(monkeypatch)
    answerer = fresh("ask")
    [outcome] = answerer.accelerations
    assert not outcome.active and re.search(expected_reason, outcome.reason)
    assert patched_layers(answerer.model) == []
    scene = fresh_scenes[4]
    for question, answer in zip(QUESTIONS, answerer([(scene.image, q) for q in QUESTIONS], top_k=1)):
        # the stock model, one question at a time, as BlipForQuestionAnswering.generate reads it
        inputs = answerer.processor(images=scene.image, text=question, return_tensors="pt")
        with torch.inference_mode():
            best = answerer.model.generate(**inputs, num_beams=5, length_penalty=0.0, max_new_tokens=10)[0]
        assert answer.text == answerer.processor.decode(best, skip_special_tokens=True)


def test_the_stock_vqa_path_answers_a_mixed_batch_like_the_accelerated_one(monkeypatch, fresh_scenes):
    # questions of different lengths about several images in one batch: the stock path asks each length unpadded
    pairs = [(s.image, q) for s in fresh_scenes[:3] for q in QUESTIONS]
    accelerated = fresh("ask")(pairs, top_k=3)
    newer_transformers(monkeypatch)
    stock = fresh("ask")
    assert not stock.accelerations[0].active
    for ours, theirs in zip(accelerated, stock(pairs, top_k=3)):
        assert [text for text, _ in ours.ranked] == [text for text, _ in theirs.ranked]
        assert [p for _, p in ours.ranked] == pytest.approx([p for _, p in theirs.ranked], abs=1e-4)


def test_the_system_panel_lists_which_path_each_model_runs():
    runtime.configure(profile="toy")
    pipelines.load("caption"), pipelines.load("ask", "toy-vilt")
    lines = pipelines.loaded_models()
    assert any(
        line.startswith("toy-blip (") and line.endswith("BLIP fused attention, each image once: on") for line in lines
    ), lines
    assert any(line.startswith("toy-vilt (") and line.endswith("float32") for line in lines), lines  # stock ViLT
