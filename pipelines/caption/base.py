"""Image captioning: what every captioning family shares (one module per family beside this one: blip,
vision_encoder_decoder).

Each image gets up to ``num_candidates`` captions, from beam search or nucleus sampling, each with the captioner's
own score: the mean log-probability per token it gives the caption (raw model distribution, before any penalty,
temperature or top-p). ``caption.rerank`` combines that score with CLIP's image-text similarity.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import fields, replace
from typing import Any, Iterator, Sequence

import torch

from ..core import registry
from ..core.budget import Deadline, mark_stopped, stopped
from ..core.errors import InputError
from ..core.hf import TransformersPipeline
from ..core.io import load_image
from ..core.limits import IMAGES_ENV
from .options import Candidate, Caption, CaptionOptions

_SAMPLING = threading.Lock()  # see _sampling


class Captioner(TransformersPipeline):
    """Images in (paths, bytes, PIL images or arrays), one Caption each out: at most limits().images_per_request
    images per call. With a ``deadline`` generation stops there, and a caption cut short by it says so
    (``Caption.stopped``); every image still gets one."""

    Options = CaptionOptions
    accepts_prefix = True
    max_inputs = ("images", "images_per_request", IMAGES_ENV)

    def options(self, **overrides: Any) -> CaptionOptions:
        """The caller's options, checked, with this model's registry defaults for what they left at None."""
        options = super().options(**overrides)
        if options.prefix.strip() and not self.accepts_prefix:
            raise InputError(
                f"The model '{self.spec.name}' cannot continue a text prefix; clear the prefix, "
                "or choose a BLIP captioner"
            )
        known = {field.name for field in fields(options)}  # a family's defaults may also hold what is no option
        filled = {
            name: value
            for name, value in registry.defaults(self.spec).items()
            if name in known and getattr(options, name) is None
        }
        if options.sample:
            filled.pop("num_beams", None)
        options = replace(options, **filled)
        options.verify()
        return options

    def preprocess(self, images: list, options: CaptionOptions) -> dict[str, torch.Tensor]:
        inputs = self.encode([load_image(image) for image in images], options)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return {name: value.to(self.device) for name, value in inputs.items()}

    def encode(self, images: list, options: CaptionOptions) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _forward(self, inputs: dict[str, torch.Tensor], options: CaptionOptions, deadline: Deadline | None = None):
        return timed(deadline, self.model.generate, inputs, options)

    def postprocess(self, outputs, inputs, options: CaptionOptions) -> list[Caption]:
        generated = outputs.sequences[:, self.prompt_length(inputs) :]
        log_probs = token_log_probs(outputs.sequences, outputs.logits, getattr(outputs, "beam_indices", None))
        steps = min(generated.shape[1], log_probs.shape[1])  # beam search may stop before its last step's length
        scores = mean_log_probs(log_probs[:, :steps], generated[:, :steps], self.end_token_ids())
        texts = [" ".join(text.split()) for text in self.decode(outputs.sequences)]
        per_image = len(texts) // len(inputs["pixel_values"])
        return [
            _best_distinct(texts[i : i + per_image], scores[i : i + per_image], stopped(outputs))
            for i in range(0, len(texts), per_image)
        ]

    def end_token_ids(self) -> set[int]:
        raise NotImplementedError

    def prompt_length(self, inputs: dict[str, torch.Tensor]) -> int:
        """How many tokens of each returned sequence came before the generated ones."""
        return 1  # the decoder's start token

    def decode(self, sequences: torch.Tensor) -> list[str]:
        return self.processor.batch_decode(sequences, skip_special_tokens=True)

    def score(self, images: Sequence, texts: Sequence[Sequence[str]]) -> list[list[float]]:
        """The captioner's score (mean log-probability per token) for given captions: ``texts[i]`` for image i.

        Scores any candidate list the same way generated candidates are scored, e.g. to re-rank captions
        written elsewhere.
        """
        if len(images) != len(texts):
            raise InputError(f"Give one list of captions per image; got {len(images)} images and {len(texts)} lists")
        self.check_inputs(images)
        options = self.options()
        scores = []
        for image, captions in zip(images, texts):
            if not captions:
                scores.append([])
                continue
            inputs = self.preprocess([image], options)
            with torch.inference_mode():
                log_probs, tokens = self.teacher_forced(inputs, list(captions))
            scores.append(mean_log_probs(log_probs, tokens, self.end_token_ids()))
        return scores

    def teacher_forced(self, inputs: dict, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probabilities, token ids) of each caption's tokens, end token included, given one image."""
        raise NotImplementedError


def timed(deadline: Deadline | None, generate, inputs: dict[str, torch.Tensor], options: CaptionOptions):
    """``generate``'s output for ``inputs``; with a deadline, generation stops there (transformers' ``max_time``),
    which may leave captions unfinished: the output is then marked (``budget.stopped``)."""
    limit = {} if deadline is None else {"max_time": deadline.generation_seconds()}
    with _sampling(options, inputs["pixel_values"].device):
        output = generate(
            **inputs, **generate_kwargs(options), **limit, output_logits=True, return_dict_in_generate=True
        )
    return mark_stopped(output, deadline)


def generate_kwargs(options: CaptionOptions) -> dict[str, Any]:
    """transformers ``generate`` arguments for ``options`` (defaults already filled in)."""
    kwargs = dict(
        max_new_tokens=options.max_new_tokens,
        min_new_tokens=options.min_new_tokens,
        repetition_penalty=options.repetition_penalty,
        num_return_sequences=options.num_candidates,
    )
    if options.sample:
        return kwargs | dict(do_sample=True, num_beams=1, top_p=options.top_p, temperature=options.temperature, top_k=0)
    return kwargs | dict(do_sample=False, num_beams=options.num_beams, length_penalty=options.length_penalty)


@contextlib.contextmanager
def _sampling(options: CaptionOptions, device: torch.device) -> Iterator[None]:
    """For a sampled call: torch's global generator to itself. With a seed it is seeded, and restored after (the
    seed's draws leave no trace); without one it runs on, so each call draws afresh.

    Concurrent requests share that generator, so sampled calls take turns: a seed reproduces whoever else samples.
    """
    if not options.sample:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with _SAMPLING, torch.random.fork_rng(devices=devices, enabled=options.seed is not None):
        if options.seed is not None:
            torch.manual_seed(options.seed)
        yield


def token_log_probs(
    sequences: torch.Tensor, logits: Sequence[torch.Tensor], beam_indices: torch.Tensor | None = None
) -> torch.Tensor:
    """(sequences, steps) raw log-probability of each generated token, read from ``generate``'s per-step
    ``logits`` (beams traced back through ``beam_indices``); 0 after a beam ended.

    The numbers of transformers' ``compute_transition_scores(..., normalize_logits=True)``, which normalises every
    step's whole vocabulary at once in a strided layout: here each step needs only one log-sum-exp per row.
    """
    if beam_indices is None:  # greedy or sampled: row i of every step is sequence i
        beam_indices = torch.arange(len(sequences), device=sequences.device)[:, None].expand(-1, len(logits))
    ended = beam_indices < 0
    steps = int((~ended).sum(dim=1).max())
    tokens = sequences[:, sequences.shape[1] - steps :]
    columns = []
    for step in range(steps):
        rows = beam_indices[:, step].clamp(min=0)
        step_logits = logits[step].float()
        columns.append(step_logits[rows, tokens[:, step]] - step_logits.logsumexp(dim=-1)[rows])
    return torch.stack(columns, dim=1).masked_fill(ended[:, :steps], 0.0)


def mean_log_probs(log_probs: torch.Tensor, tokens: torch.Tensor, end_ids: set[int]) -> list[float]:
    """Mean over each row's tokens up to and including its first end token (later positions are padding)."""
    is_end = torch.zeros_like(tokens, dtype=torch.bool)
    for end in end_ids:
        is_end |= tokens == end
    ended_before = (is_end.long().cumsum(dim=1) - is_end.long()) > 0
    counted = (~ended_before).float()
    total = (log_probs.float() * counted).sum(dim=1)
    return (total / counted.sum(dim=1).clamp(min=1)).tolist()


def _best_distinct(texts: list[str], scores: list[float], cut: bool = False) -> Caption:
    best: dict[str, float] = {}
    for text, score in zip(texts, scores):
        best[text] = max(score, best.get(text, float("-inf")))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return Caption(tuple(Candidate(text, score) for text, score in ranked), cut)
