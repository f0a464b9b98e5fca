"""BLIP VQA: encodes the question against the image, then generates answers with beam search."""

from __future__ import annotations

import torch

from ..blip_attention import ImageRows, use_skinny_linear, use_sdpa
from ..blip_generate import encode_images
from .base import VqaBatch, VqaPipeline
from .options import Answer, AskOptions


class BlipVqa(VqaPipeline):
    model_class_name = "BlipForQuestionAnswering"
    processor_class_name = "BlipProcessor"

    def __init__(self, spec, device, dtype, model, processor):
        use_sdpa(model)  # BLIP's layers attend eagerly in transformers; SDPA gives the same result, faster
        for part in (model.text_encoder, model.text_decoder):  # questions and answers: few rows per weight product
            use_skinny_linear(part)
        super().__init__(spec, device, dtype, model, processor)

    @property
    def max_question_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def _forward(self, batch: VqaBatch, options: AskOptions):
        # BlipForQuestionAnswering.generate() step by step, so that each distinct image is encoded once however
        # many questions ask about it: vision tower, question encoder over the image (read once per image by its
        # questions: see ImageRows), answer decoder.
        model = self.model
        images = encode_images(model, batch.pixels["pixel_values"])
        # no image mask: every image token may be attended to, as in BLIP's generate()
        question = model.text_encoder(input_ids=batch.text["input_ids"], attention_mask=batch.text["attention_mask"],
                                      encoder_hidden_states=images, past_key_values=ImageRows(batch.image_index),
                                      return_dict=False)[0]
        start = torch.full((question.shape[0], 1), model.decoder_start_token_id, device=question.device)
        beams = max(options.num_beams, options.top_k)
        # length_penalty 0: each beam's score is its answer's total log-probability, comparable across lengths.
        # The answer reads its question's tokens, not the padding a longer question in the batch brings (BLIP's
        # generate() masks nothing: it reads one question at a time).
        search = {"num_beams": beams, "length_penalty": 0.0} if beams > 1 else {}
        return model.text_decoder.generate(
            input_ids=start, eos_token_id=model.config.text_config.sep_token_id,
            pad_token_id=model.config.text_config.pad_token_id, encoder_hidden_states=question,
            encoder_attention_mask=batch.text["attention_mask"], **search, num_return_sequences=options.top_k,
            max_new_tokens=options.max_new_tokens, output_scores=True, return_dict_in_generate=True)

    def postprocess(self, outputs, batch: VqaBatch, options: AskOptions) -> list[Answer]:
        k = options.top_k
        texts = [" ".join(t.split()) for t in self.processor.batch_decode(outputs.sequences, skip_special_tokens=True)]
        scores = getattr(outputs, "sequences_scores", None)  # None when decoding was greedy (one beam, one answer)
        scores = scores.float().view(-1, k).cpu() if scores is not None else torch.zeros(len(batch.questions), 1)
        return [Answer(question, _ranked(texts[row * k:(row + 1) * k], scores[row]), cut)
                for row, (question, cut) in enumerate(zip(batch.questions, batch.truncated))]


def _ranked(texts: list[str], log_probs: torch.Tensor) -> tuple[tuple[str, float], ...]:
    """Beam answers with probabilities normalised over the non-empty answers; beams that decode alike are merged."""
    merged: dict[str, float] = {}
    for text, p in zip(texts, log_probs.softmax(-1).tolist()):
        if text:
            merged[text] = merged.get(text, 0.0) + p
    total = sum(merged.values()) or 1.0
    return tuple(sorted(((t, p / total) for t, p in merged.items()), key=lambda item: -item[1]))
