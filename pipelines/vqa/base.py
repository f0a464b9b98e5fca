"""What both VQA families share: question and image checks before the forward, and the batched call."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass

import torch

from ..core.errors import InputError
from ..core.hf import TransformersPipeline
from ..core.io import image_at_least
from ..core.limits import IMAGES_ENV, limits
from .options import AskOptions

MIN_IMAGE_SIDE = 8  # pixels; smaller images hold nothing to ask about
SUPPORTED_SCRIPTS = ("LATIN",)  # both families were trained on English questions


class VqaPipeline(TransformersPipeline):
    """(image, question) pairs in, one Answer each out: at most limits().images_per_request pairs per call. With a
    ``deadline`` a generated answer stops there and says so (``Answer.stopped``). Subclasses run the model and rank
    its answers."""

    Options = AskOptions
    max_inputs = ("(image, question) pairs", "images_per_request", IMAGES_ENV)

    @property
    def max_question_tokens(self) -> int:
        raise NotImplementedError

    def preprocess(self, pairs: list, options: AskOptions) -> "VqaBatch":
        images, questions, cut = pair_images(pairs), [], []
        for pair in pairs:
            questions.append(clean_question(pair[1], self.spec.name))
            cut.append(isinstance(pair[1], str) and len(pair[1].strip()) > limits().text_chars)
        # Several questions about one image: each distinct image is prepared (and, where the family allows,
        # encoded) once.
        unique, image_index = _distinct(images)
        pixels = self.processor.image_processor(images=unique, return_tensors="pt")
        pixels["pixel_values"] = pixels["pixel_values"].to(self.dtype)
        tokenizer = self.processor.tokenizer
        lengths = [len(ids) for ids in tokenizer(questions)["input_ids"]]
        text = tokenizer(
            questions, padding=True, truncation=True, max_length=self.max_question_tokens, return_tensors="pt"
        )
        return VqaBatch(
            text={name: value.to(self.device) for name, value in text.items()},
            pixels={name: value.to(self.device) for name, value in pixels.items()},
            image_index=torch.tensor(image_index, device=self.device),
            questions=tokenizer.batch_decode(text["input_ids"], skip_special_tokens=True),
            truncated=[n > self.max_question_tokens or was_cut for n, was_cut in zip(lengths, cut)],
        )


@dataclass
class VqaBatch:
    text: dict[str, torch.Tensor]  # tokenized questions, one row per pair
    pixels: dict[str, torch.Tensor]  # prepared images, one row per distinct image
    image_index: torch.Tensor  # for each pair, its image's row in ``pixels``
    questions: list[str]  # as the model reads them
    truncated: list[bool]

    def pixels_per_pair(self) -> dict[str, torch.Tensor]:
        return {name: value[self.image_index] for name, value in self.pixels.items()}


def _distinct(images: list) -> tuple[list, list[int]]:
    """The distinct images (by pixels) and, for each input, the index of its distinct image."""
    rows: dict[tuple, int] = {}  # keyed by a digest of the pixels: a batch keeps no copy of them
    index = [rows.setdefault((image.size, hashlib.blake2b(image.tobytes()).digest()), len(rows)) for image in images]
    unique = [None] * len(rows)
    for image, i in zip(images, index):
        unique[i] = image
    return unique, index


def pair_images(pairs: list) -> list:
    """The image of each (image, question) pair, decoded and checked; several questions about one file: it is
    decoded once. Refuses anything that is not such a pair."""
    images, decoded = [], {}
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InputError(f"Expected (image, question) pairs; got {type(pair).__name__}")
        source = pair[0]
        if isinstance(source, (str, os.PathLike)):
            key = os.fspath(source)
            if key not in decoded:
                decoded[key] = _usable_image(source)
            images.append(decoded[key])
        else:
            images.append(_usable_image(source))
    return images


def clean_question(question, model: str = "the model") -> str:
    """The question, tidied and cut at the text limit; refuses empty questions and scripts the model cannot read."""
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"The question is empty (got {question!r}). Type a question, e.g. 'what color is the shape?'")
    # Cut, not refused: the model reads only its first few dozen tokens anyway (the answer says it was cut).
    question = " ".join(question[: limits().text_chars].split())
    if not any(ch.isalnum() for ch in question):
        raise InputError(
            f"The question {question[:40]!r} has no words. Type a question, e.g. 'what color is the shape?'"
        )
    scripts = [_script(ch) for ch in question if ch.isalpha()]
    foreign = [s for s in scripts if s not in SUPPORTED_SCRIPTS]
    if scripts and len(foreign) * 2 > len(scripts):
        script = max(set(foreign), key=foreign.count)
        raise InputError(
            f"The question is written in {script} script, which {model} cannot read: it was trained on "
            "English questions. Ask in English (Latin letters), e.g. 'what color is the shape?'"
        )
    return question


def _script(ch: str) -> str:
    """The Unicode script of a letter, from its name: 'CYRILLIC SMALL LETTER A' -> 'Cyrillic'."""
    name = unicodedata.name(ch, "UNKNOWN")
    word = name.split()[0]
    return "LATIN" if word == "LATIN" else word.title().replace("Cjk", "Chinese/Japanese (CJK)")


def _usable_image(source):
    return image_at_least(source, MIN_IMAGE_SIDE, "answer questions about")
