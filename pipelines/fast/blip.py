"""The BLIP acceleration's guard: when our attention and decoding apply to a loaded BLIP model, and installing them.

What they are: ``blip_attention`` (fused attention, each image's keys and values projected once, weight-first
products for the few rows of a decoding step) and ``blip_generate`` (captions that handle each image once, not once
per beam). The captioner and the VQA pipeline each check them on a small batch of their own (see ``fast``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch

from . import unknown_parameters, version_outside
from .blip_attention import use_sdpa, use_skinny_linear

NAME = "BLIP fused attention, each image once"
TRANSFORMERS_RANGE = ("5.0", "6.0")  # written for transformers 5; 5.24 renamed the cache argument, handled
# Every argument the stock attention layers may receive that our replacements read (or may safely ignore).
TEXT_ATTENTION_ARGS = {
    "hidden_states",
    "attention_mask",
    "encoder_hidden_states",
    "encoder_attention_mask",
    "cache",
    "past_key_values",
    "output_attentions",
}
VISION_ATTENTION_ARGS = {"hidden_states", "output_attentions"}
# What our code reads of the stock layers.
TEXT_ATTENTION_ATTRS = ("query", "key", "value", "dropout", "attention_head_size", "all_head_size", "layer_idx")
VISION_ATTENTION_ATTRS = ("qkv", "projection", "num_heads", "head_dim", "dropout")
CHECK_SEED = 1234  # the check batch's pixels and tokens


def why_not(model: torch.nn.Module) -> str | None:
    """None when our BLIP attention can replace ``model``'s, else why not."""
    import transformers
    from transformers.models.blip import modeling_blip, modeling_blip_text

    reason = version_outside("transformers", transformers.__version__, *TRANSFORMERS_RANGE)
    reason = reason or unknown_parameters(modeling_blip_text.BlipTextSelfAttention.forward, TEXT_ATTENTION_ARGS)
    reason = reason or unknown_parameters(modeling_blip.BlipAttention.forward, VISION_ATTENTION_ARGS)
    layers = (("BlipTextSelfAttention", TEXT_ATTENTION_ATTRS), ("BlipAttention", VISION_ATTENTION_ATTRS))
    for kind, attributes in layers:
        layer = next((m for m in model.modules() if type(m).__name__ == kind), None)
        if reason is None and layer is None:
            reason = f"the model has no {kind} layer"
        missing = [name for name in attributes if layer is not None and not hasattr(layer, name)]
        if reason is None and missing:
            reason = f"{kind} no longer has {', '.join(missing)}"
    return reason


def install(model: torch.nn.Module, text_parts: list[torch.nn.Module]) -> Callable[[], None]:
    """Switch ``model``'s attention and ``text_parts``' linear layers to ours; returns the undo."""
    use_sdpa(model)
    for part in text_parts:
        use_skinny_linear(part)

    def undo() -> None:
        for module in model.modules():
            vars(module).pop("forward", None)  # the class's own forward shows through again

    return undo


@functools.cache
def cache_keyword(text_model_class: type) -> str:
    """The name under which a BLIP text model's forward takes its cache: 'cache' since 5.24 (read once per class)."""
    return "cache" if "cache" in inspect.signature(text_model_class.forward).parameters else "past_key_values"


def check_pixels(model: torch.nn.Module, images: int) -> torch.Tensor:
    """``images`` fixed pseudo-random images at the model's input size, dtype and device."""
    size = model.config.vision_config.image_size
    generator = torch.Generator().manual_seed(CHECK_SEED)
    pixels = torch.randn(images, 3, size, size, generator=generator)
    parameter = next(model.parameters())
    return pixels.to(device=parameter.device, dtype=parameter.dtype)


def check_tokens(model: torch.nn.Module, rows: int, length: int) -> torch.Tensor:
    """(rows, length) fixed pseudo-random token ids."""
    generator = torch.Generator().manual_seed(CHECK_SEED)
    ids = torch.randint(0, model.config.text_config.vocab_size, (rows, length), generator=generator)
    return ids.to(next(model.parameters()).device)
