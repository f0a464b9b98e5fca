"""Reading a question's alternatives, and showing answers and probabilities without garbled words or numbers."""

from __future__ import annotations

import pytest
import torch

from demos.common import percent
from pipelines import studio
from pipelines.vqa.blip import _ranked
from pipelines.vqa.choices import alternatives


@pytest.mark.parametrize(
    "question,choices",
    [
        ("is it a cat or a dog?", ["cat", "dog"]),
        ("If it's a cat or a dog?", ["cat", "dog"]),  # how speech recognition heard it
        ("if it’s a cat or a dog", ["cat", "dog"]),
        ("Is this a cat or is it a dog?", ["cat", "dog"]),
        ("does the picture show a cat or a dog", ["cat", "dog"]),
        ("Is it a photo of a horse or a rocket?", ["horse", "rocket"]),
        ("is there a horse or a rocket in the photo?", ["horse", "rocket"]),
        ("is it a red circle or a blue square?", ["red circle", "blue square"]),
        ("a cat, a dog or a rocket", ["cat", "dog", "rocket"]),
        ("Is it red, green or blue?", ["red", "green", "blue"]),
        ("what color is the shape?", []),
        ("a cat", []),
    ],
)
def test_a_question_s_alternatives_are_the_things_it_names(question, choices):
    assert alternatives(question) == choices
    assert studio.alternatives(question) == choices  # the Studio's zero-shot labels come from the same reading


@pytest.mark.parametrize(
    "probability,shown",
    [(0.9963, ">99%"), (0.12, "12%"), (0.0021, "<1%"), (0.0, "0%"), (1.0, "100%"), (0.5, "50%")],
)
def test_probabilities_never_read_as_certain_or_impossible_when_they_are_neither(probability, shown):
    assert percent(probability) == shown


def test_a_beam_that_stopped_at_its_article_is_not_an_answer():
    ranked = _ranked(["circle", "an", "a", "square", ""], torch.log(torch.tensor([0.6, 0.2, 0.1, 0.05, 0.05])))
    assert [text for text, _ in ranked] == ["circle", "square"]
    assert sum(p for _, p in ranked) == pytest.approx(1.0)
    only_articles = _ranked(["an", "a"], torch.log(torch.tensor([0.7, 0.3])))
    assert [text for text, _ in only_articles] == ["an", "a"]  # nothing better came back: shown as it is
