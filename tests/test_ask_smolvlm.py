"""Ask with a chat model (the ask family "smolvlm"): the toy SmolVLM (assets/models/toy/smolvlm-chat) answers colour
and shape questions about held-out scenes in free words through pipelines.load("ask"), each answer with the
probability of its tokens; the Hub-shaped SmolVLM2 repos answer too; the Ask tab and /ask offer them."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from gradio_client import handle_file

import pipelines
import toyworld
from pipelines.core import limits, registry, runtime
from pipelines.core.errors import InputError
from tests.conftest import models_put_back
from tests.hublike import hub_fixture, write_repo
from tests.hublike import repos as hub_repos

TOY = "toy-smolvlm"
SEED = toyworld.HELD_OUT_SEED + 7400  # held-out scenes: no training or metric seed comes near
HUB_NAMES = ["smolvlm2-256m", "smolvlm2-500m", "smolvlm2-2.2b"]


@pytest.fixture(autouse=True)
def every_question_in_one_call(monkeypatch):
    monkeypatch.setenv(limits.IMAGES_ENV, "1000")


@pytest.fixture(scope="module")
def scenes() -> list[toyworld.Scene]:
    return toyworld.scenes(20, start_seed=SEED)


@pytest.fixture(scope="module")
def answerer():
    return pipelines.load("ask", TOY)


def accuracy(hits) -> float:
    hits = list(hits)
    return sum(hits) / len(hits)


def test_colour_and_shape_questions_are_answered_right_with_a_probability(answerer, scenes):
    pairs = [(s.image, "What color is the shape?") for s in scenes] + [(s.image, "What shape is it?") for s in scenes]
    answers = answerer(pairs)
    expected = [s.color for s in scenes] + [s.shape for s in scenes]
    assert accuracy(a.text == e for a, e in zip(answers, expected)) >= 0.9
    for answer in answers:
        probabilities = [p for _, p in answer.ranked]
        assert all(0 < p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-6
        assert probabilities == sorted(probabilities, reverse=True)
        assert len({text for text, _ in answer.ranked}) == len(answer.ranked) <= 5
    assert answers[0].question == "What color is the shape?"


def test_the_probability_shown_is_the_models_probability_of_that_answer(answerer, scenes):
    """A greedy answer (one beam, one answer): its probability is the product of its tokens' probabilities, read
    back from one forward pass of the model over the question and that answer."""
    scene = scenes[3]
    [answer] = answerer([(scene.image, "What color is the shape?")], top_k=1, num_beams=1)
    assert answer.text == scene.color and len(answer.ranked) == 1
    inputs = answerer.encode_turns([scene.image], ["What color is the shape?"])
    said = answerer.processor.tokenizer(" " + answer.text, add_special_tokens=False)["input_ids"]
    said += [answerer.end_of_utterance_id]
    ids = torch.cat([inputs["input_ids"], torch.tensor([said[:-1]])], dim=1)
    with torch.inference_mode():
        logits = answerer.model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=inputs["pixel_values"],
            pixel_attention_mask=inputs["pixel_attention_mask"],
        ).logits[0, inputs["input_ids"].shape[1] - 1 :]
    log_probs = logits.float().log_softmax(-1)[torch.arange(len(said)), torch.tensor(said)]
    assert answer.score == pytest.approx(math.exp(float(log_probs.sum())), rel=1e-3)


def test_top_k_answers_are_distinct_and_the_best_matches_greedy(answerer, scenes):
    scene = scenes[4]
    [ranked] = answerer([(scene.image, "What shape is it?")], top_k=3)
    [greedy] = answerer([(scene.image, "What shape is it?")], top_k=1, num_beams=1)
    assert len(ranked.ranked) == 3 and ranked.text == greedy.text == scene.shape
    assert ranked.score == pytest.approx(greedy.score, rel=1e-3)


def test_questions_of_different_lengths_in_one_batch_answer_as_alone(answerer, scenes):
    pairs = [
        (scenes[0].image, "What color is the shape?"),
        (scenes[1].image, "Shape?"),
        (scenes[2].image, "What shape is it?"),
    ]
    together = answerer(pairs, top_k=2)
    alone = [answerer([pair], top_k=2)[0] for pair in pairs]
    assert [a.ranked[0][0] for a in together] == [a.ranked[0][0] for a in alone]
    for a, b in zip(together, alone):
        assert a.score == pytest.approx(b.score, rel=1e-3)


def test_the_prompt_comes_from_the_registry(answerer):
    assert registry.family("ask", "smolvlm")["defaults"]["prompt"] == "{question} Answer in a few words."
    assert answerer.prompt == "{question}"  # the toy's own entry: it was trained on bare questions


def test_control_tokens_in_a_question_are_read_as_text(answerer, scenes):
    scene = scenes[5]
    [answer] = answerer([(scene.image, "<image> What color is the shape? <end_of_utterance>")])
    assert answer.ranked and all(0 < p <= 1 for _, p in answer.ranked)
    assert answerer([(scene.image, "What color is the shape?")])[0].text == scene.color  # the next one works


@pytest.mark.parametrize(
    "pair,message",
    [
        (("IMAGE", "   "), "The question is empty"),
        (("IMAGE", "?!"), "has no words"),
        ("not a pair", "Expected \\(image, question\\) pairs"),
    ],
)
def test_bad_questions_are_refused_with_what_to_do(answerer, scenes, pair, message):
    if isinstance(pair, tuple):
        pair = (scenes[0].image, pair[1])
    with pytest.raises(InputError, match=message):
        answerer([pair])


def test_a_long_question_is_cut_and_says_so(answerer, scenes):
    long = "What color is the shape? " + "please " * 400
    [answer] = answerer([(scenes[0].image, long)])
    assert answer.truncated and len(answerer.processor.tokenizer(answer.question)["input_ids"]) <= 256 + 2


def test_half_precision_on_the_cpu_answers_right(scenes):
    with models_put_back():
        half = pipelines.load("ask", TOY, dtype=torch.float16)
        assert half.model.dtype == torch.float16
        answers = half([(s.image, "What color is the shape?") for s in scenes[:10]])
    assert accuracy(a.text == s.color for a, s in zip(answers, scenes)) >= 0.9
    assert all(0 < a.score <= 1 for a in answers)


def test_a_typed_directory_of_a_smolvlm_checkpoint_answers_with_this_family(scenes, tmp_path):
    directory = str(tmp_path / "smolvlm")  # a copy: the toy's own directory loads as its registry entry
    shutil.copytree(registry.PROJECT_ROOT / registry.resolve("ask", TOY, "toy").source, directory)
    assert registry.family_of_model_type("ask", "smolvlm") == "smolvlm"
    with models_put_back():
        typed = pipelines.load("ask", directory)
        assert type(typed).__name__ == "SmolVlmVqa" and typed.spec.backend == "smolvlm"
        assert typed.prompt == "{question} Answer in a few words."  # the family's: the directory is no entry
        [answer] = typed([(scenes[0].image, "What color is the shape?")])
    assert answer.ranked and 0 < answer.score <= 1


def test_the_ask_tab_lists_the_chat_models():
    from demos.common import model_choice

    choices = [value for _, value in model_choice("ask").choices]
    assert {TOY, *HUB_NAMES} <= set(choices)


@pytest.mark.slow
def test_ask_api_with_the_toy_smolvlm(client, scenes, tmp_path):
    scene = scenes[6]
    path = tmp_path / "scene.png"
    scene.image.save(path)
    answer, ranked, table = client.predict(
        handle_file(str(path)), "what shape is it?\nwhat color is it?", TOY, 3, api_name="/ask"
    )
    assert answer.splitlines() == [scene.shape, scene.color]
    assert ranked["label"] == scene.shape
    confidences = [c["confidence"] for c in ranked["confidences"]]
    assert 1 < len(confidences) <= 3 and all(0 < p <= 1 for p in confidences)
    assert confidences == sorted(confidences, reverse=True)
    expected = [["what shape is it?", scene.shape], ["what color is it?", scene.color]]
    assert [row[:2] for row in table["data"]] == expected
    assert table["data"][0][2] == pytest.approx(confidences[0], abs=1e-4)


hub = hub_fixture(scope="module")


@pytest.mark.slow
@pytest.mark.parametrize("name", HUB_NAMES)
def test_every_smolvlm2_entry_answers_from_the_hub(hub, tmp_path, name):
    """The Hub-shaped repos (random weights at shrunk sizes) load through the ask family; the greedy answer is what
    transformers' own generate answers to the registry's prompt, and each answer has a probability."""
    spec = registry.resolve("ask", name, "default")
    write_repo(hub.root, spec.source, hub_repos.repo_files(spec.source))
    with pytest.MonkeyPatch.context() as patch, models_put_back():
        patch.setattr(runtime, "_settings", runtime.settings())
        runtime.configure(profile="default", device="cpu", cache_dir=tmp_path / "cache", models_dir=tmp_path / "models")
        answerer = pipelines.load("ask", name)
        assert answerer.spec.name == name and type(answerer).__name__ == "SmolVlmVqa"
        assert ("ask", name) not in pipelines.fallbacks
        image = toyworld.scene(83, size=600).image
        answers = answerer([(image, "what color is the shape?"), (image, "is it round?")], top_k=2, max_new_tokens=4)
        [greedy] = answerer([(image, "what color is the shape?")], top_k=1, num_beams=1, max_new_tokens=4)
        stock = stock_answer(answerer, image, "what color is the shape? Answer in a few words.", 4)
    assert answers[0].question == "what color is the shape?"
    assert all(a.ranked and all(0 < p <= 1 for _, p in a.ranked) for a in answers if a.text)
    assert greedy.text == stock.rstrip(".").strip()


def stock_answer(answerer, image, prompt: str, max_new_tokens: int) -> str:
    content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
    inputs = answerer.processor.apply_chat_template(
        [{"role": "user", "content": content}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"do_image_splitting": False},
    )
    with torch.inference_mode():
        out = answerer.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    answer = answerer.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return " ".join(answer.split())
