"""BLIP captioners (Salesforce/blip-image-captioning-*): the prompt may start the caption; generation runs through
the BLIP acceleration when its check at load passes."""

from __future__ import annotations

from functools import partial

import torch

from .. import fast
from ..fast import blip as fast_blip
from ..fast import blip_generate
from .base import Captioner, timed


class BlipCaptioner(Captioner):
    model_class_name = "BlipForConditionalGeneration"
    processor_class_name = "BlipProcessor"

    def __init__(self, spec, device, dtype, model, processor):
        super().__init__(spec, device, dtype, model, processor)
        self.accelerations = (fast.accelerate(model, ACCELERATION),)
        self.generate = partial(blip_generate.generate, model) if self.accelerations[0].active else model.generate

    def encode(self, images, options):
        # generate() drops the prompt's last token ([SEP]); one prompt for every image keeps them aligned
        if options.prefix.strip():
            prefixes = [options.prefix.strip()] * len(images)
            return dict(self.processor(images=images, text=prefixes, return_tensors="pt"))
        return dict(self.processor(images=images, return_tensors="pt"))

    def _forward(self, inputs, options, deadline=None):
        return timed(deadline, self.generate, inputs, options)

    def end_token_ids(self):
        return {self.model.config.text_config.sep_token_id}

    def prompt_length(self, inputs):
        prompt = inputs.get("input_ids")
        return 1 if prompt is None else prompt.shape[1] - 1  # generate() drops the prompt's [SEP]

    def teacher_forced(self, inputs, captions):
        text = self.model.config.text_config
        tokens = self.processor.tokenizer(captions, padding=True, return_tensors="pt").to(self.device)
        ids = tokens["input_ids"].clone()
        ids[:, 0] = text.bos_token_id  # [CLS] -> [DEC], as generate() does
        image = self.model.vision_model(pixel_values=inputs["pixel_values"])[0]
        image = image.expand(len(captions), -1, -1)
        logits = self.model.text_decoder(
            input_ids=ids, attention_mask=tokens["attention_mask"], encoder_hidden_states=image
        ).logits
        targets = ids[:, 1:]
        log_probs = logits[:, :-1].float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]
        return log_probs, targets.masked_fill(tokens["attention_mask"][:, 1:] == 0, text.sep_token_id)


# The check batch of BLIP's acceleration: two images, two beams each, every step of a short caption.
CHECK_GENERATE = dict(
    num_beams=2,
    num_return_sequences=2,
    max_new_tokens=4,
    min_new_tokens=4,
    output_logits=True,
    return_dict_in_generate=True,
)


def _check_captions(model, accelerated: bool):
    """The check batch through stock ``generate``, or through ours in each way it may attend to the images."""
    pixels = fast_blip.check_pixels(model, 2)
    with torch.inference_mode():
        if not accelerated:
            return model.generate(pixel_values=pixels, **CHECK_GENERATE)
        absorbs = (False, True) if pixels.device.type == "cpu" and pixels.dtype == torch.float32 else (False,)
        return [blip_generate.generate(model, pixels, absorb=absorb, **CHECK_GENERATE) for absorb in absorbs]


def _check_differences(model, stock, ours) -> str | None:
    return next(filter(None, (fast.logits_differences(stock, output, fast.tolerance(model)) for output in ours)), None)


ACCELERATION = fast.Acceleration(
    name=fast_blip.NAME,
    why_not=fast_blip.why_not,
    install=lambda model: fast_blip.install(model, [model.text_decoder]),
    run=_check_captions,
    differences=_check_differences,
)
