"""The Studio: one image and one voice (or typed words) in; every model runs once, and each part comes out as
soon as it is ready.

    for part, result in studio.run(image="scene.png", audio="question.wav"):
        print(part, result)          # "words", "search_text", ..., or an Unavailable saying why not

The image is decoded and embedded once, the words are embedded once, and those two vectors serve the searches,
both fusion rankings, the zero-shot labels and the caption re-ranking. Parts that lack an input say so and the
others still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from . import load, visitor_message
from .caption.options import MAX_CANDIDATES
from .caption.rerank import Ranked, rerank
from .core.budget import Deadline, limit_phrase
from .core.errors import InputError, PipelineError
from .core.io import load_image
from .core.limits import TEXT_LIMIT, check_text
from .core.options import option, verify
from .fusion import ClipSpace, early_fusion, late_fusion, shared_space
from .search.classify import DEFAULT_TEMPLATE, Classification, classifier
from .search.gallery import Gallery, Item, bundled
from .search.heatmap import Heatmap, relevance_map
from .search.retrieval import Hit
from .speech import Transcript
from .vqa import Answer, choices

log = logging.getLogger(__name__)

# The parts of a run, in the order they are produced (quick ones first).
PARTS = ("words", "vectors", "search_text", "search_image", "fusion", "labels", "caption", "answer")
# What each profile's bundled examples show: zero-shot labels for when the words name no alternatives.
PROFILE_LABELS = {
    "toy": "a red shape, a green shape, a blue shape, a yellow shape, a purple shape, an orange shape",
    "default": "a cat, an astronaut, a cup of coffee, a rocket, a motorcycle, a horse, coins, a galaxy",
}
DEFAULT_LABELS = ", ".join(PROFILE_LABELS.values())  # an API call's default: both kinds of example


@dataclass(frozen=True)
class Unavailable:
    """A part that could not run, and why (what the user can do about it)."""

    reason: str


@dataclass(frozen=True)
class Words:
    text: str
    spoken: bool  # True: transcribed from the recording; False: typed
    transcript: Transcript | None = None


@dataclass(frozen=True)
class Vectors:
    """The run's two embeddings in the shared CLIP space (unit float32), kept to re-weight the fusion later."""

    image: np.ndarray | None
    text: np.ndarray | None


@dataclass(frozen=True)
class Rankings:
    """The composed query (image + words) searched two ways, with the same text weight."""

    text_weight: float
    early: tuple[Hit, ...]  # one fused query vector, then one search
    late: tuple[Hit, ...]  # one search per modality, then the rescaled scores combined


@dataclass(frozen=True)
class Answered:
    answer: Answer
    heatmap: Heatmap  # where CLIP finds the best answer in the image


@dataclass(frozen=True)
class StudioOptions:
    text_weight: float = option(
        0.5, low=0, high=1, step=0.05, help="fusion: 0 = only the image counts, 1 = only the words"
    )
    top_k: int = option(4, low=1, high=24, whole=True, slider=(1, 12), help="images per search")
    num_candidates: int = option(3, low=1, high=MAX_CANDIDATES, whole=True, help="captions to re-rank")
    clip_weight: float = option(
        0.5, low=0, high=1, step=0.05, help="caption re-ranking: 0 = the captioner's score only, 1 = CLIP's only"
    )
    labels: str = option(
        DEFAULT_LABELS,
        what="The list of labels",
        max_chars=TEXT_LIMIT,
        help='comma-separated; used when the words name no alternatives ("a cat or a dog?")',
    )
    template: str | None = option(
        DEFAULT_TEMPLATE,
        optional=True,
        what="The template",
        max_chars=TEXT_LIMIT,
        help="how each label becomes a sentence, e.g. 'a photo of a {}'; none = the model's",
    )

    def verify(self) -> None:
        verify(self)


def run(
    image: Any = None,
    audio: Any = None,
    text: str | None = None,
    options: StudioOptions = StudioOptions(),
    deadline: Deadline | float | None = None,
) -> Iterator[tuple[str, Any]]:
    """Yield (part, result) for every name in PARTS, in that order; a result is an Unavailable if it cannot run.

    ``audio`` (a recording of a question or a description) wins over ``text`` (typed words) when both are given.
    Inputs are bounded as in every task (limits(): typed words and labels in characters, the recording in
    seconds). ``deadline`` (a Deadline, or seconds of model time, counted once the run's models are loaded; None:
    no limit): transcription and generation stop there, and the caption and the answer do not start once it has
    passed (each says so).
    """
    options.verify()
    space = shared_space()
    gallery = bundled()
    # Loaded before the clock starts; a model that cannot load makes only its own part Unavailable.
    transcriber = _attempt(lambda: load("transcribe")) if audio is not None else None
    captioner, answerer = _attempt(lambda: load("caption")), _attempt(lambda: load("ask"))
    labeller = _attempt(classifier)
    deadline = Deadline.of(deadline)

    words = transcriber if not _ok(transcriber) else _attempt(lambda: _words(transcriber, audio, text, deadline))
    yield "words", words
    picture = _attempt(lambda: _picture(image))
    said = words.text if isinstance(words, Words) else None
    text_vector = _attempt(lambda: space.embed_texts([said])[0]) if said else words
    image_vector = _attempt(lambda: space.embed_images([picture])[0]) if _ok(picture) else picture

    yield "vectors", Vectors(*(v if _ok(v) else None for v in (image_vector, text_vector)))
    yield "search_text", _needs(text_vector, lambda: _search(space, gallery, text_vector, options.top_k))
    yield "search_image", _needs(image_vector, lambda: _search(space, gallery, image_vector, options.top_k))
    yield (
        "fusion",
        _needs(
            [image_vector, text_vector], lambda: fuse(image_vector, text_vector, options.text_weight, options.top_k)
        ),
    )
    yield "labels", _needs([image_vector, labeller], lambda: _labels(labeller, image_vector, said, options))
    yield (
        "caption",
        _needs(
            [image_vector, captioner],
            lambda: _caption(captioner, picture, image_vector, space, options, deadline),
            deadline,
        ),
    )
    yield (
        "answer",
        _needs([picture, words, answerer], lambda: _answer(answerer, picture, said, space, deadline), deadline),
    )


def _ok(value) -> bool:
    return not isinstance(value, Unavailable)


def _attempt(work) -> Any:
    """work(), or an Unavailable carrying the user-facing reason it failed."""
    try:
        return work()
    except PipelineError as error:
        return Unavailable(visitor_message(error))
    except Exception:  # a bug or a library failure: this part fails, the others still run
        log.exception("studio part failed")
        return Unavailable("Something went wrong in this part (the server log has the details); the others still ran")


def _needs(inputs, work, deadline: Deadline | None = None) -> Any:
    """work() if every input is there (and ``deadline`` has not passed), else the reason it cannot run."""
    missing = [value for value in (inputs if isinstance(inputs, list) else [inputs]) if not _ok(value)]
    if missing:
        return missing[0]
    if deadline is not None and deadline.stop_before_next_step():
        return Unavailable(f"Not started: {limit_phrase(deadline.seconds)}. Run again for this part")
    return _attempt(work)


def _words(transcriber, audio, text, deadline: Deadline | None = None) -> Words:
    if audio is not None:
        [transcript] = transcriber([audio], deadline=deadline)
        if not transcript.has_speech:
            raise InputError(
                f"No speech was found in this {transcript.duration:.1f} s recording. Record again, "
                "closer to the microphone, or type the words instead"
            )
        return Words(transcript.text, spoken=True, transcript=transcript)
    if text is not None and text.strip():
        check_text("The typed text", text)
        return Words(" ".join(text.split()), spoken=False)
    raise InputError("No speech or text was given: record a question (or upload one), or type it")


def _picture(image):
    if image is None:
        raise InputError("No image was given: upload one, take one with the webcam, or pick an example")
    return load_image(image)


def _search(space: ClipSpace, gallery: Gallery, vector: np.ndarray, k: int) -> tuple[Hit, ...]:
    [found] = gallery.search(space, vector[None], min(k, len(gallery)))
    return _hits(found)


def _hits(found: list[tuple[Item, float]]) -> tuple[Hit, ...]:
    return tuple(Hit(item.path, item.label, score) for item, score in found)


def fuse(image_vector: np.ndarray, text_vector: np.ndarray, text_weight: float, top_k: int) -> Rankings:
    """The composed query searched by early and by late fusion, from embeddings already computed."""
    StudioOptions(text_weight=text_weight, top_k=top_k).verify()
    space, gallery = shared_space(), bundled()
    weights = [1 - text_weight, text_weight]
    k = min(top_k, len(gallery))
    [early] = gallery.search(space, early_fusion([image_vector, text_vector], weights)[None], k)
    everything = len(gallery)  # late fusion combines each modality's score for every image
    by_image, by_text = gallery.search(space, np.stack([image_vector, text_vector]), everything)
    text_scores = {item.path: score for item, score in by_text}
    items = [item for item, _ in by_image]
    fused = late_fusion(
        [np.array([score for _, score in by_image]), np.array([text_scores[i.path] for i in items])], weights
    )
    order = np.argsort(-fused, kind="stable")[:k]
    return Rankings(
        text_weight, _hits(early), tuple(Hit(items[i].path, items[i].label, float(fused[i])) for i in order)
    )


def _labels(labeller, image_vector, said: str | None, options: StudioOptions) -> Classification:
    labels = alternatives(said or "") or options.labels.strip()
    if not labels:
        raise InputError(
            "No labels to tell apart: say or type the alternatives (e.g. 'is it a cat or a dog?'), "
            "or list labels in the options"
        )
    [result] = labeller.classify_vectors(image_vector, labels, options.template)
    return result


def alternatives(words: str) -> list[str]:
    """The choices in a sentence: 'is it a red circle or a blue square?' -> ['red circle', 'blue square']."""
    return choices.alternatives(words)


def _caption(captioner, picture, image_vector, space: ClipSpace, options: StudioOptions, deadline=None) -> list[Ranked]:
    [caption] = captioner([picture], num_candidates=options.num_candidates, deadline=deadline)
    return rerank(caption.candidates, image_vector, space, options.clip_weight)


def _answer(answerer, picture, question: str, space: ClipSpace, deadline=None) -> Answered:
    [answer] = answerer([(picture, question)], deadline=deadline)
    return Answered(answer, relevance_map(space, picture, answer.text or question))
