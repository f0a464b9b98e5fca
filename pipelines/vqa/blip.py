"""BLIP VQA: encodes the question against the image, then generates answers with beam search."""

from __future__ import annotations

from functools import partial

import torch

from .. import fast
from ..core.budget import Deadline, mark_stopped, stopped
from ..fast import blip as fast_blip
from ..fast.blip_attention import ImageRows
from ..fast.blip_generate import encode_images
from .base import VqaBatch, VqaPipeline
from .options import Answer, AskOptions


class BlipVqa(VqaPipeline):
    model_class_name = "BlipForQuestionAnswering"
    processor_class_name = "BlipProcessor"

    def __init__(self, spec, device, dtype, model, processor):
        super().__init__(spec, device, dtype, model, processor)
        self.accelerations = (fast.accelerate(model, ACCELERATION),)

    @property
    def max_question_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def _forward(
        self, batch: VqaBatch, options: AskOptions, deadline: Deadline | None = None
    ) -> list[tuple[list[int], object]]:
        """(rows of the batch, their generate output) for each group of questions answered together; with a
        deadline, generation stops there (``max_time``)."""
        run = partial(
            answer,
            self.model,
            batch.pixels["pixel_values"],
            beams=options.num_beams,
            top_k=options.top_k,
            max_new_tokens=options.max_new_tokens,
            deadline=deadline,
        )
        if self.accelerations[0].active:  # our attention honours the question mask: one batch
            return [(list(range(len(batch.questions))), run(batch.text, batch.image_index, accelerated=True))]
        # The stock cross-attention drops the question mask (transformers 5), so an answer would read the padding
        # of a longer question in its batch: questions of each length are answered together, unpadded.
        lengths = batch.text["attention_mask"].sum(dim=1)
        groups = []
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero()[:, 0]
            text = {name: value[rows, :length] for name, value in batch.text.items()}  # padding is on the right
            groups.append((rows.tolist(), run(text, batch.image_index[rows], accelerated=False)))
        return groups

    def postprocess(self, outputs, batch: VqaBatch, options: AskOptions) -> list[Answer]:
        k = options.top_k
        answers: list[Answer] = [None] * len(batch.questions)
        for rows, output in outputs:
            decoded = self.processor.batch_decode(output.sequences, skip_special_tokens=True)
            texts = [" ".join(t.split()) for t in decoded]
            scores = getattr(output, "sequences_scores", None)  # None when decoding was greedy (one beam, one answer)
            scores = scores.float().view(-1, k).cpu() if scores is not None else torch.zeros(len(rows), 1)
            cut = stopped(output)
            for index, row in enumerate(rows):
                ranked = _ranked(texts[index * k : (index + 1) * k], scores[index])
                answers[row] = Answer(batch.questions[row], ranked, batch.truncated[row], cut)
        return answers


def answer(
    model,
    pixels: torch.Tensor,
    text: dict[str, torch.Tensor],
    image_index: torch.Tensor,
    *,
    beams: int,
    top_k: int,
    max_new_tokens: int,
    accelerated: bool,
    deadline: Deadline | None = None,
):
    """``BlipForQuestionAnswering.generate`` step by step, for a batch of questions (``text``) about the distinct
    images ``pixels`` (question i about image ``image_index[i]``): vision tower once per distinct image, question
    encoder over its image, answer decoder. ``accelerated``: the question encoder reads each image once for all
    its questions (``ImageRows``) instead of a copy per question."""
    images = encode_images(model, pixels) if accelerated else model.vision_model(pixel_values=pixels)[0]
    # no image mask: every image token may be attended to, as in BLIP's generate()
    if accelerated:
        reading = {
            "encoder_hidden_states": images,
            fast_blip.cache_keyword(type(model.text_encoder)): ImageRows(image_index),
        }
    else:
        reading = {"encoder_hidden_states": images[image_index]}
    question = model.text_encoder(
        input_ids=text["input_ids"], attention_mask=text["attention_mask"], **reading, return_dict=False
    )[0]
    start = torch.full((question.shape[0], 1), model.decoder_start_token_id, device=question.device)
    beams = max(beams, top_k)
    # length_penalty 0: each beam's score is its answer's total log-probability, comparable across lengths.
    # The answer reads its question's tokens, not the padding a longer question in the batch brings (BLIP's
    # generate() masks nothing: it reads one question at a time).
    search = {"num_beams": beams, "length_penalty": 0.0} if beams > 1 else {}
    if deadline is not None:
        search["max_time"] = deadline.generation_seconds()
    output = model.text_decoder.generate(
        input_ids=start,
        eos_token_id=model.config.text_config.sep_token_id,
        pad_token_id=model.config.text_config.pad_token_id,
        encoder_hidden_states=question,
        encoder_attention_mask=text["attention_mask"],
        **search,
        num_return_sequences=top_k,
        max_new_tokens=max_new_tokens,
        output_scores=True,
        return_dict_in_generate=True,
    )
    return mark_stopped(output, deadline)


# The check batch of BLIP's acceleration: four questions about two images, asked in image order (each image's
# questions read it together) and interleaved (each question reads its own copy). Unpadded: the stock
# cross-attention drops the question mask, which ours honours (tests compare that with one question at a time).
CHECK_IMAGE_ORDERS = ([0, 0, 1, 1], [0, 1, 1, 0])
CHECK_QUESTION_TOKENS = 8


def _check_answers(model, accelerated: bool) -> list:
    pixels = fast_blip.check_pixels(model, 2)
    ids = fast_blip.check_tokens(model, len(CHECK_IMAGE_ORDERS[0]), CHECK_QUESTION_TOKENS)
    text = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.inference_mode():
        return [
            answer(
                model,
                pixels,
                text,
                torch.tensor(order, device=ids.device),
                beams=2,
                top_k=2,
                max_new_tokens=3,
                accelerated=accelerated,
            )
            for order in CHECK_IMAGE_ORDERS
        ]


def _check_differences(model, stock: list, ours: list) -> str | None:
    tolerance = fast.tolerance(model)
    return next(filter(None, (fast.logits_differences(a, b, tolerance) for a, b in zip(stock, ours))), None)


ACCELERATION = fast.Acceleration(
    name=fast_blip.NAME,
    why_not=fast_blip.why_not,
    install=lambda model: fast_blip.install(model, [model.text_encoder, model.text_decoder]),
    run=_check_answers,
    differences=_check_differences,
)


NOT_ANSWERS = ("a", "an", "the")  # beams that stopped at the article, before the answer word


def _ranked(texts: list[str], log_probs: torch.Tensor) -> tuple[tuple[str, float], ...]:
    """Beam answers with probabilities normalised over the real answers; beams that decode alike are merged.

    A beam that decodes to nothing or to a bare article ('an': it stopped before its word) is no answer: shown, it
    read as "an 0%"."""
    probabilities = log_probs.softmax(-1).tolist()
    real = [text.lower() not in NOT_ANSWERS for text in texts]
    merged: dict[str, float] = {}
    for text, p, keep in zip(texts, probabilities, real):
        if text and (keep or not any(real)):  # only bare articles came back: shown as they are
            merged[text] = merged.get(text, 0.0) + p
    total = sum(merged.values()) or 1.0
    return tuple(sorted(((t, p / total) for t, p in merged.items()), key=lambda item: -item[1]))
