"""BLIP caption generation that handles the image once per image, not once per beam.

``BlipForConditionalGeneration.generate`` hands the image to the text decoder's ``generate``, which copies it per
beam (or per returned sample) and projects the cross-attention keys and values for every copy; beam search then
copies that whole cross-attention cache again at every step when it reorders beams. Beams and samples of one image
all see the same image, so here an image's beams query it together (``blip_attention``), and beam reordering leaves
it alone. What they query is, for short decodings, the image states themselves (no keys or values projected, see
``absorbed_attention_pays``), otherwise the keys and values, projected once per image. On CPU the vision tower
runs a few images at a time, so that its activations stay in cache. Same tokens and scores as the stock
``generate``, up to float rounding.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from .blip import cache_keyword
from .blip_attention import ImageCache, absorbed_attention_pays

CPU_VISION_CHUNK = 4  # images per vision-tower forward on CPU: a few images' activations stay in cache


def encode_images(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The vision tower's last hidden states for ``pixel_values``, a few images at a time on CPU."""
    chunk = CPU_VISION_CHUNK if pixel_values.device.type == "cpu" else len(pixel_values)
    return torch.cat([model.vision_model(pixel_values=part)[0] for part in pixel_values.split(chunk)])


def generate(
    model,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    absorb: bool | None = None,
    **generate_kwargs,
):
    """``model.generate(pixel_values, input_ids, attention_mask, **generate_kwargs)`` for a BLIP captioner.

    ``absorb``: attend to the image states unprojected (True), or to keys and values projected once per image
    (False); None picks whichever needs fewer multiplications for this many rows and tokens (on CPU, in fp32).
    ``generate`` lays out the beams (or returned samples) of one image as consecutive rows; the cross-attention
    finds how many rows each image has from the batch size.
    """
    text = model.config.text_config
    image = encode_images(model, pixel_values)
    batch = image.shape[0]
    if input_ids is None:
        input_ids = torch.tensor([[text.bos_token_id, text.eos_token_id]], device=image.device).repeat(batch, 1)
    input_ids = input_ids.clone()
    input_ids[:, 0] = text.bos_token_id  # the decoder starts at [DEC]; a prompt's last token ([SEP]) is dropped
    if absorb is None:
        queries = _rows_per_image(model, generate_kwargs) * _tokens(model, input_ids, generate_kwargs)
        absorb = absorbed_attention_pays(queries, image, text.num_attention_heads)
    cross = DynamicCache(config=model.text_decoder.config)
    if not absorb:
        for index, layer in enumerate(model.text_decoder.bert.encoder.layer):
            attention = layer.crossattention.self
            shape = (batch, image.shape[1], -1, attention.attention_head_size)
            key = attention.key(image).view(shape).transpose(1, 2)
            value = attention.value(image).view(shape).transpose(1, 2)
            cross.update(key, value, index)
    cache = ImageCache(DynamicCache(config=model.text_decoder.config), cross, image if absorb else None)
    return model.text_decoder.generate(
        input_ids=input_ids[:, :-1],
        attention_mask=None if attention_mask is None else attention_mask[:, :-1],
        eos_token_id=text.sep_token_id,
        pad_token_id=text.pad_token_id,
        encoder_hidden_states=image,  # only its shape and mask are used: the image is in the cache
        encoder_attention_mask=torch.ones(image.shape[:-1], dtype=torch.long, device=image.device),
        **{cache_keyword(type(model.text_decoder)): cache},
        **generate_kwargs,
    )


def _rows_per_image(model, generate_kwargs: dict) -> int:
    """How many rows ``generate`` decodes per image: its beams, or its returned samples."""
    config = model.generation_config
    return max(
        generate_kwargs.get("num_beams") or config.num_beams or 1,
        generate_kwargs.get("num_return_sequences") or config.num_return_sequences or 1,
    )


def _tokens(model, input_ids: torch.Tensor, generate_kwargs: dict) -> int:
    """The most positions one row can pass through the decoder: its prompt and every new token."""
    new = generate_kwargs.get("max_new_tokens") or model.generation_config.max_new_tokens
    if new is None:
        return int(generate_kwargs.get("max_length") or model.generation_config.max_length)
    return input_ids.shape[1] - 1 + new
