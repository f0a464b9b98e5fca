"""ViT-GPT2 and kin (transformers' VisionEncoderDecoderModel): an image processor for the encoder, a tokenizer for
the decoder; no text prefix.

GPT-2's byte-level BPE marks a word that follows a space (``Ġgreen``); a caption's first word has no space before
it (``a``), since every training caption starts right after the decoder-start token. A beam that should have ended
can instead start a second caption with such a spaceless article, glued to the last word: "a greena green green
triangle", "a purple squarea purple square", "a purplean orange square". Generation forbids exactly that
(``OneCaption``): after the first token, an article may come only with its space (``Ġa``), so a beam ends or goes on
with the caption.
"""

from __future__ import annotations

import functools

import torch

from ..core.base import TakingTurns
from ..core.hf import load_part
from .base import Captioner, timed

CAPTION_STARTS = ("a", "an", "the")  # the articles captions begin with (COCO's style, and the shapes world's)


class VisionEncoderDecoderCaptioner(Captioner):
    """ViT-GPT2 and kin: an image processor for the encoder, a tokenizer for the decoder's output."""

    model_class_name = "VisionEncoderDecoderModel"
    accepts_prefix = False

    def __init__(self, spec, device, dtype, model, processor):
        model.generation_config.max_length = None  # every call passes max_new_tokens (the registry's default) instead
        image_processor, tokenizer = processor
        super().__init__(spec, device, dtype, model, (image_processor, TakingTurns(tokenizer)))

    @classmethod
    def load_processor(cls, spec, path):
        from transformers import AutoImageProcessor, AutoTokenizer

        return load_part(spec, path, AutoImageProcessor), load_part(spec, path, AutoTokenizer)

    def _forward(self, inputs, options, deadline=None):
        generate = functools.partial(self.model.generate, logits_processor=self._one_caption())
        return timed(deadline, generate, inputs, options)

    @functools.cached_property
    def _caption_starts(self) -> list[int]:
        """The ids of the spaceless articles (``a``, ``An``, ...): how a caption starts, never how it goes on."""
        _, tokenizer = self.processor
        vocabulary = tokenizer.get_vocab()  # {token: id}; a word after a space is spelt with the marker (Ġa)
        return sorted(index for token, index in vocabulary.items() if token.lower() in CAPTION_STARTS)

    def _one_caption(self):
        from transformers import LogitsProcessorList

        return LogitsProcessorList([OneCaption(self._caption_starts)])

    def encode(self, images, options):
        image_processor, _ = self.processor
        return {"pixel_values": image_processor(images=images, return_tensors="pt")["pixel_values"]}

    def end_token_ids(self):
        return {self.model.generation_config.eos_token_id}

    def decode(self, sequences):
        _, tokenizer = self.processor
        return tokenizer.batch_decode(sequences, skip_special_tokens=True)

    def teacher_forced(self, inputs, captions):
        _, tokenizer = self.processor
        end = self.model.generation_config.eos_token_id
        start = self.model.generation_config.decoder_start_token_id
        encoded = [tokenizer(caption)["input_ids"] + [end] for caption in captions]
        width = max(len(ids) for ids in encoded)
        targets = torch.tensor([ids + [end] * (width - len(ids)) for ids in encoded], device=self.device)
        decoder_inputs = torch.cat([torch.full_like(targets[:, :1], start), targets[:, :-1]], dim=1)
        pixels = inputs["pixel_values"].expand(len(captions), -1, -1, -1)
        logits = self.model(pixel_values=pixels, decoder_input_ids=decoder_inputs).logits
        return logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0], targets


class OneCaption:
    """A logits processor: from the second generated token on, the spaceless articles (``starts``) are forbidden,
    so no beam starts a second caption glued to the last word of the first. With the space (``Ġa``) they stay."""

    def __init__(self, starts: list[int]):
        self.starts = starts

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] < 2 or not self.starts:  # only the decoder-start token so far: the first word comes
            return scores
        scores = scores.clone()
        scores[:, self.starts] = float("-inf")
        return scores
