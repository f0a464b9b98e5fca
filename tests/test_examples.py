"""Every toy example the tabs offer gets a correct answer from the toy profile."""

from pathlib import Path

import pytest

import pipelines
from demos import examples

TOY_EXAMPLES = examples.toy_scenes()


def content(path: str) -> tuple[str, str]:
    color, shape = Path(path).stem.split("_")
    return color, shape


def test_the_examples_cover_every_colour_and_shape():
    import toyworld

    colors, shapes = zip(*map(content, TOY_EXAMPLES))
    assert set(colors) == set(toyworld.COLORS) and set(shapes) == set(toyworld.SHAPES)


def test_caption_examples():
    captions = pipelines.load("caption")(TOY_EXAMPLES)
    for path, caption in zip(TOY_EXAMPLES, captions):
        assert set(content(path)) <= set(caption.text.split()), (path, caption.text)


@pytest.mark.parametrize("question,part", [("what color is the shape?", 0), ("what shape is it?", 1)])
def test_ask_examples(question, part):
    answers = pipelines.load("ask")([(path, question) for path in TOY_EXAMPLES])
    assert [a.text for a in answers] == [content(path)[part] for path in TOY_EXAMPLES]


def test_search_finds_each_example_by_its_name():
    queries = [" ".join(content(path)) for path in TOY_EXAMPLES]
    results = pipelines.load("search")(queries, top_k=1)
    assert [r.hits[0].path for r in results] == TOY_EXAMPLES
