"""ViT-GPT2 and kin (transformers' VisionEncoderDecoderModel): an image processor for the encoder, a tokenizer for
the decoder; no text prefix."""

from __future__ import annotations

import torch

from ..core.base import TakingTurns
from ..core.hf import load_part
from .base import Captioner


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
