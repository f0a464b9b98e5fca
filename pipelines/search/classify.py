"""Zero-shot classification in the shared CLIP space: an image against labels written as prompts.

from pipelines.search.classify import classifier
[result] = classifier()(["photo.jpg"], labels=["cat", "dog"], template="a photo of a {}")
result.best, result.scores        # "cat", {"cat": 0.97, "dog": 0.03}
classifier().classify_vectors(image_embeddings, labels)   # images another tab already embedded
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core import limits, registry
from ..core.errors import InputError
from ..fusion.operators import similarity
from ..fusion.space import ClipSpace

DEFAULT_TEMPLATE = registry.family("search", "open_clip")["defaults"]["template"]  # "a photo of a {}"
MAX_LABELS = 100
MAX_LABEL_CHARS = 200  # characters per label


@dataclass(frozen=True)
class Classification:
    scores: dict[str, float]  # label -> probability (softmax over the labels), best first

    @property
    def best(self) -> str:
        return next(iter(self.scores))


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Labels from a comma-separated string or a list: stripped, empty ones and repeats dropped."""
    if labels is None:
        labels = []
    if isinstance(labels, str):
        limits.check_text("The labels", labels)  # before splitting: a huge string costs nothing more
    else:
        limits.check_text("The labels", ",".join(map(str, labels)))
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    cleaned = list(dict.fromkeys(" ".join(str(label).split()) for label in items if str(label).strip()))
    if len(cleaned) < 2:
        raise InputError(
            f"Give at least two labels, separated by commas (got {len(cleaned) or 'none'}), e.g. 'cat, dog, rocket'"
        )
    if len(cleaned) > MAX_LABELS:
        raise InputError(f"{len(cleaned)} labels were given; at most {MAX_LABELS} are compared at once")
    too_long = [label for label in cleaned if len(label) > MAX_LABEL_CHARS]
    if too_long:
        raise InputError(f"A label is {len(too_long[0]):,} characters long; keep labels under {MAX_LABEL_CHARS}")
    return cleaned


def prompts(labels: Sequence[str], template: str | None) -> list[str]:
    """Each label written into the template at its ``{}``."""
    limits.check_text("The prompt template", template)
    template = " ".join((template or DEFAULT_TEMPLATE).split())
    if template.count("{}") != 1:
        shown = template if len(template) <= 80 else template[:80] + "..."
        raise InputError(
            f"The prompt template must contain '{{}}' exactly once, where each label goes; "
            f"got {shown!r}. For example: '{DEFAULT_TEMPLATE}'"
        )
    return [template.replace("{}", label) for label in labels]


class ZeroShotClassifier:
    """Scores images against label prompts with the CLIP space's own temperature, as probabilities."""

    def __init__(self, space: ClipSpace, template: str = DEFAULT_TEMPLATE):
        self.space, self.template = space, template  # the template used when a call gives none
        self._prompt_vectors: dict[tuple[str, ...], np.ndarray] = {}  # the last few label sets, embedded
        self._lock = threading.Lock()

    def __call__(self, images: Sequence, labels, template: str | None = None) -> list[Classification]:
        if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
            raise InputError(f"Pass a list of images; got {type(images).__name__}. Wrap one image as [image]")
        labels = parse_labels(labels)
        texts = self._prompts(labels, template)  # checks the template before any image is decoded
        return self._classify(self.space.embed_images(images), labels, texts)

    def classify_vectors(self, vectors: np.ndarray, labels, template: str | None = None) -> list[Classification]:
        """The same for image embeddings already computed with this space (no image is encoded again)."""
        labels = parse_labels(labels)
        return self._classify(
            np.atleast_2d(np.asarray(vectors, dtype=np.float32)), labels, self._prompts(labels, template)
        )

    def _prompts(self, labels: list[str], template: str | None) -> tuple[str, ...]:
        return tuple(prompts(labels, template or self.template))

    def _classify(self, image_vectors: np.ndarray, labels: list[str], texts: tuple[str, ...]) -> list[Classification]:
        with self._lock:
            text_vectors = self._prompt_vectors.get(texts)
        if text_vectors is None:
            text_vectors = self.space.embed_texts(list(texts))
            with self._lock:
                if len(self._prompt_vectors) >= 16:
                    self._prompt_vectors.pop(next(iter(self._prompt_vectors)))
                self._prompt_vectors[texts] = text_vectors
        logits = self.space.logit_scale * similarity(image_vectors, text_vectors)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        results = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")
            results.append(Classification({labels[i]: float(row[i]) for i in order}))
        return results


def classifier(model: str | None = None) -> ZeroShotClassifier:
    """The classifier over the search model's CLIP space (one per space, shared), with its family's template."""
    from .. import load  # by registry name (the search task's module is imported by the loader)
    from ..core import runtime

    searcher = load("search", model)
    template = registry.defaults(searcher.spec).get("template", DEFAULT_TEMPLATE)
    return runtime.cache.get(
        ("classify", id(searcher.space)),
        lambda: ZeroShotClassifier(searcher.space, template),
        derived_from=searcher.space,  # unloaded with the space
    )
