"""Fused attention (torch's scaled_dot_product_attention) for BLIP, which transformers only runs eagerly.

The eager path materialises every (query, key) score, scales it, softmaxes it and multiplies by the values in
separate passes; SDPA does the same sum in one fused kernel. Same weights, same result up to float rounding.
``use_sdpa`` switches one model instance's attention layers; other instances keep the stock code.
``ImageRows`` lets a batch whose rows share images project each image's cross-attention keys and values once, or,
when that costs less, attend to the image states without projecting them at all (``absorbed_attention_pays``).
``use_skinny_linear`` speeds up the text layers' matrix products when few rows pass through them (decoding steps).
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache, EncoderDecoderCache


@dataclass
class ImageRows:
    """Passed as ``past_key_values`` to a BLIP text model run on ``encoder_hidden_states`` of the distinct images:
    row i of the batch attends to image ``rows[i]``. Keys and values are projected per image, then gathered per row
    (or, when each image's rows are consecutive and equally many, read once per image by those rows together).
    """

    rows: torch.Tensor  # (batch,) index into the distinct images
    absorb: bool | None = None  # attend to the image states themselves; None: when that costs fewer products

    def __post_init__(self) -> None:
        # rows 0..c-1 on image 0, the next c on image 1, ...: each image's rows can query it together, no gather
        images = int(self.rows.max()) + 1 if len(self.rows) else 0
        grouped = (
            images
            and len(self.rows) % images == 0
            and torch.equal(self.rows.cpu(), torch.arange(images).repeat_interleave(len(self.rows) // images))
        )
        self.grouped = bool(grouped)

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


SKINNY_ROWS = 128  # up to this many rows, MKL multiplies faster with the weight as the left operand (CPU)


def use_skinny_linear(model: torch.nn.Module) -> int:
    """Make ``model``'s linear layers compute few rows as (weight @ rows^T)^T on CPU; returns how many were switched.

    A decoding step sends one token per sequence through every weight matrix: a product with very few rows, which
    MKL runs faster (up to ~1.7x at 16 rows) with the weight on the left. Same sums; larger inputs keep ``F.linear``.
    """
    linears = [module for module in model.modules() if type(module) is torch.nn.Linear]
    for module in linears:
        module.forward = types.MethodType(_skinny_linear, module)
    return len(linears)


def _skinny_linear(self, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    if rows > SKINNY_ROWS or x.device.type != "cpu" or not x.is_floating_point():
        return F.linear(x, self.weight, self.bias)
    flat = x.reshape(rows, x.shape[-1]).t()
    out = torch.mm(self.weight, flat) if self.bias is None else torch.addmm(self.bias[:, None], self.weight, flat)
    return out.t().contiguous().view(*x.shape[:-1], self.out_features)


def _vision_attention(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, None]:
    batch, length, width = hidden_states.shape
    qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=_dropout(self, self.dropout.p))
    return self.projection(context.transpose(1, 2).reshape(batch, length, width)), None


class ImageCache(EncoderDecoderCache):
    """Decoding cache of a batch whose consecutive rows share an image (the beams or samples of one image): the
    self-attention cache, and each image's cross-attention keys and values projected once, or, with ``images``, the
    image states themselves, which the rows attend to unprojected (``_absorbed_cross_attention``).
    """

    def __init__(
        self,
        self_attention_cache: DynamicCache,
        cross_attention_cache: DynamicCache,
        images: torch.Tensor | None = None,
    ) -> None:
        super().__init__(self_attention_cache, cross_attention_cache)
        self.images = images

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        # beams are only ever reordered within one image's group, and every beam of an image holds the same image
        self.self_attention_cache.reorder_cache(beam_idx)


def absorbed_attention_pays(queries: int, images: torch.Tensor, heads: int) -> bool:
    """Whether ``queries`` query positions per image (rows x tokens, over all decoding steps) attending to the image
    states ``images`` unprojected need fewer multiplications per layer than projecting its keys and values once.

    Projected: 2 x positions x width^2 for keys and values, then 2 x queries x positions x width to attend.
    Absorbed: 2 x queries x width^2 to map each query and result, then 2 x queries x heads x positions x width.
    Only on CPU in fp32, where it was measured; on a GPU the projection is one large product that runs fast, while
    the fused attention kernels are not built for heads as wide as the image.
    """
    positions, width = images.shape[-2:]
    if images.device.type != "cpu" or images.dtype != torch.float32:
        return False
    return queries * (width + (heads - 1) * positions) < positions * width


def _text_attention(
    self,
    hidden_states: torch.Tensor,
    attention_mask=None,
    encoder_hidden_states=None,
    encoder_attention_mask=None,
    cache=None,
    past_key_values=None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    past_key_values = cache if cache is not None else past_key_values  # renamed to ``cache`` in transformers 5.24
    batch, length, _ = hidden_states.shape
    query = self.query(hidden_states).view(batch, length, -1, self.attention_head_size).transpose(1, 2)
    cross = encoder_hidden_states is not None
    # transformers 5 hands a cross-attention its encoder's mask as ``attention_mask`` (and its own attention, which
    # reads ``encoder_attention_mask`` there, drops it): either way the mask is honoured here
    mask = attention_mask if encoder_attention_mask is None else encoder_attention_mask
    if cross and _absorbs(self, query, encoder_hidden_states, mask, past_key_values):
        images = getattr(past_key_values, "images", None)
        return _absorbed_cross_attention(self, query, encoder_hidden_states if images is None else images), None
    cache, projected, rows = past_key_values, False, None
    if isinstance(cache, ImageRows):
        cache, rows = None, cache.rows if cross else None
    elif isinstance(cache, EncoderDecoderCache):
        projected = cross and cache.is_updated.get(self.layer_idx, False)
        cache = cache.cross_attention_cache if cross else cache.self_attention_cache
    if projected:
        # the image's keys and values were projected at the first step; every later step reuses them
        key, value = cache.layers[self.layer_idx].keys, cache.layers[self.layer_idx].values
        if key.shape[0] != batch:  # held once per image (blip_generate): each image's rows query it together
            return _per_image_cross_attention(self, query, key, value), None
    else:
        source = encoder_hidden_states if cross else hidden_states
        shape = (source.shape[0], source.shape[1], -1, self.attention_head_size)
        key = self.key(source).view(shape).transpose(1, 2)
        value = self.value(source).view(shape).transpose(1, 2)
        if rows is not None:
            if past_key_values.grouped and mask is None:
                return _per_image_cross_attention(self, query, key, value), None
            key, value = key[rows], value[rows]
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
            if cross and isinstance(past_key_values, EncoderDecoderCache):
                past_key_values.is_updated[self.layer_idx] = True
    if mask is not None:
        mask = mask.to(query.dtype)
    context = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=_dropout(self, self.dropout.p)
    )
    return context.transpose(1, 2).reshape(batch, length, self.all_head_size), None


def _absorbs(self, query: torch.Tensor, states: torch.Tensor, mask, cache) -> bool:
    """Whether this cross-attention call attends to the image states unprojected (``_absorbed_cross_attention``)."""
    if _dropout(self, self.dropout.p):
        return False  # dropped attention weights no longer sum to one
    if isinstance(cache, ImageCache):
        return cache.images is not None  # blip_generate weighed the cost for all the decoding steps
    if not isinstance(cache, ImageRows) or not cache.grouped or mask is not None:
        return False
    if cache.absorb is not None:
        return cache.absorb
    batch, heads, length, _ = query.shape
    return absorbed_attention_pays(batch // states.shape[0] * length, states, heads)


def _absorbed_cross_attention(self, query: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Cross-attention of each image's consecutive rows (``batch // images``) to the image states themselves.

    A head's score q . (Wk x + bk) is (Wk^T q) . x plus q . bk, which is the same for every image position, so
    softmax ignores it; and as the attention weights p sum to one, sum(p (Wv x + bv)) = Wv sum(p x) + bv. So each
    head's query is mapped back to the image's width, attends to the image states (all rows and heads of an image
    as one query, the images read once), and the result goes through that head's value weights: the same sums,
    without projecting keys and values for every image position.
    """
    batch, heads, length, size = query.shape
    count, _, width = images.shape
    by_head = query.transpose(0, 1).reshape(heads, batch * length, size)
    wide = torch.bmm(by_head, self.key.weight.view(heads, size, width))  # (heads, batch x length, width)
    per_image = wide.view(heads, count, -1, width).transpose(0, 1).reshape(count, 1, -1, width)
    states = images.unsqueeze(1)
    mixed = F.scaled_dot_product_attention(per_image, states, states, scale=size**-0.5)
    mixed = mixed.view(count, heads, -1, width).transpose(0, 1).reshape(heads, batch * length, width)
    context = torch.bmm(mixed, self.value.weight.view(heads, size, width).mT)  # (heads, batch x length, size)
    if self.value.bias is not None:
        context = context + self.value.bias.view(heads, 1, size)
    return context.view(heads, batch, length, size).permute(1, 2, 0, 3).reshape(batch, length, heads * size)


def _per_image_cross_attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Cross-attention of ``copies`` consecutive rows per image to that image's keys and values, which are read once.

    The rows' query positions become one longer query: in cross-attention positions do not see each other, and every
    image position may be attended to (callers pass no image mask, or one of all ones), so each result is unchanged.
    """
    batch, heads, length, size = query.shape
    images = key.shape[0]
    query = query.view(images, batch // images, heads, length, size).transpose(1, 2).reshape(images, heads, -1, size)
    context = F.scaled_dot_product_attention(query, key, value, dropout_p=_dropout(self, self.dropout.p))
    context = context.view(images, heads, batch // images, length, size).permute(0, 2, 3, 1, 4)
    return context.reshape(batch, length, self.all_head_size)


def _dropout(module: torch.nn.Module, p: float) -> float:
    return p if module.training else 0.0
