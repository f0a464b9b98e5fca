"""Fused attention (torch's scaled_dot_product_attention) for BLIP, which transformers only runs eagerly.

The eager path materialises every (query, key) score, scales it, softmaxes it and multiplies by the values in
separate passes; SDPA does the same sum in one fused kernel. Same weights, same result up to float rounding.
``use_sdpa`` switches one model instance's attention layers; other instances keep the stock code.
``ImageRows`` lets a batch whose rows share images project each image's cross-attention keys and values once.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.cache_utils import EncoderDecoderCache


@dataclass
class ImageRows:
    """Passed as ``past_key_values`` to a BLIP text model run on ``encoder_hidden_states`` of the distinct images:
    row i of the batch attends to image ``rows[i]``. Keys and values are projected per image, then gathered per row.
    """

    rows: torch.Tensor  # (batch,) index into the distinct images

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # nothing cached: the text positions start at 0


def use_sdpa(model: torch.nn.Module) -> int:
    """Make ``model``'s BLIP attention layers (vision and text) use SDPA; returns how many were switched."""
    switched = 0
    for module in model.modules():
        kind = type(module).__name__
        if kind == "BlipAttention":
            module.forward = types.MethodType(_vision_attention, module)
        elif kind == "BlipTextSelfAttention":
            module.forward = types.MethodType(_text_attention, module)
        else:
            continue
        switched += 1
    return switched


def _vision_attention(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, None]:
    batch, length, width = hidden_states.shape
    qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=_dropout(self, self.dropout.p))
    return self.projection(context.transpose(1, 2).reshape(batch, length, width)), None


def _text_attention(self, hidden_states: torch.Tensor, attention_mask=None, encoder_hidden_states=None,
                    encoder_attention_mask=None, past_key_values=None, **kwargs) -> tuple[torch.Tensor, None]:
    batch, length, _ = hidden_states.shape
    query = self.query(hidden_states).view(batch, length, -1, self.attention_head_size).transpose(1, 2)
    cross = encoder_hidden_states is not None
    mask = encoder_attention_mask if cross else attention_mask
    cache, projected, rows = past_key_values, False, None
    if isinstance(cache, ImageRows):
        cache, rows = None, cache.rows if cross else None
    elif isinstance(cache, EncoderDecoderCache):
        projected = cross and cache.is_updated.get(self.layer_idx, False)
        cache = cache.cross_attention_cache if cross else cache.self_attention_cache
    if projected:
        # the image's keys and values were projected at the first step; every later step reuses them
        key, value = cache.layers[self.layer_idx].keys, cache.layers[self.layer_idx].values
    else:
        source = encoder_hidden_states if cross else hidden_states
        shape = (source.shape[0], source.shape[1], -1, self.attention_head_size)
        key = self.key(source).view(shape).transpose(1, 2)
        value = self.value(source).view(shape).transpose(1, 2)
        if rows is not None:
            key, value = key[rows], value[rows]
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
            if cross and isinstance(past_key_values, EncoderDecoderCache):
                past_key_values.is_updated[self.layer_idx] = True
    if mask is not None:
        mask = mask.to(query.dtype)
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             dropout_p=_dropout(self, self.dropout.p))
    return context.transpose(1, 2).reshape(batch, length, self.all_head_size), None


def _dropout(module: torch.nn.Module, p: float) -> float:
    return p if module.training else 0.0
