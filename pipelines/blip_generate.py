"""BLIP caption generation that handles the image's keys and values once per image.

``BlipForConditionalGeneration.generate`` hands the image to the text decoder's ``generate``, which copies it per
beam (or per returned sample) and projects the cross-attention keys and values for every copy; beam search then
copies that whole cross-attention cache again at every step when it reorders beams. Beams and samples of one image
all see the same image, so here the keys and values are projected once per image and held once per image: the
copies of an image query them together (``blip_attention``), and beam reordering leaves them alone. On CPU the vision
tower runs a few images at a time, so that its activations stay in cache. Same tokens and scores as the stock
``generate``.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

CPU_VISION_CHUNK = 4  # images per vision-tower forward on CPU: a few images' activations stay in cache


class ImageCache(EncoderDecoderCache):
    """Self-attention cache plus the image's cross-attention keys and values, filled before decoding starts."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        # beams are only ever reordered within one image's group, and every beam of an image holds the same image
        self.self_attention_cache.reorder_cache(beam_idx)


def generate(model, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
             attention_mask: torch.Tensor | None = None, **generate_kwargs):
    """``model.generate(pixel_values, input_ids, attention_mask, **generate_kwargs)`` for a BLIP captioner.

    ``generate`` lays out the beams (or returned samples) of one image as consecutive rows; the cross-attention
    finds how many rows each image has from the batch size.
    """
    text = model.config.text_config
    chunk = CPU_VISION_CHUNK if pixel_values.device.type == "cpu" else len(pixel_values)
    image = torch.cat([model.vision_model(pixel_values=part)[0] for part in pixel_values.split(chunk)])
    batch = image.shape[0]
    if input_ids is None:
        input_ids = torch.tensor([[text.bos_token_id, text.eos_token_id]], device=image.device).repeat(batch, 1)
    input_ids = input_ids.clone()
    input_ids[:, 0] = text.bos_token_id  # the decoder starts at [DEC]; a prompt's last token ([SEP]) is dropped
    cross = DynamicCache(config=model.text_decoder.config)
    for index, layer in enumerate(model.text_decoder.bert.encoder.layer):
        attention = layer.crossattention.self
        shape = (batch, image.shape[1], -1, attention.attention_head_size)
        key = attention.key(image).view(shape).transpose(1, 2)
        value = attention.value(image).view(shape).transpose(1, 2)
        cross.update(key, value, index)
    cache = ImageCache(DynamicCache(config=model.text_decoder.config), cross)
    return model.text_decoder.generate(
        input_ids=input_ids[:, :-1],
        attention_mask=None if attention_mask is None else attention_mask[:, :-1],
        eos_token_id=text.sep_token_id,
        pad_token_id=text.pad_token_id,
        encoder_hidden_states=image,  # only its shape and mask are used: the keys and values are in the cache
        encoder_attention_mask=torch.ones(image.shape[:-1], dtype=torch.long, device=image.device),
        past_key_values=cache,
        **generate_kwargs,
    )
