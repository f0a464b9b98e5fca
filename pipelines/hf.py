"""Loading transformers checkpoints: safetensors only, in the pipeline's device and dtype."""

from __future__ import annotations

from pathlib import Path

import torch

from .base import checkpoint_dir, require_safetensors, translating_load_errors
from .registry import ModelSpec

# What a hub snapshot of a transformers checkpoint needs: configs, tokenizer/processor files, safetensors weights.
HF_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]


def load_pretrained(spec: ModelSpec, model_class, device: torch.device, dtype: torch.dtype):
    """(model, checkpoint directory) for ``spec``, in eval mode on ``device`` in ``dtype``."""
    path = checkpoint_dir(spec, HF_FILES)
    require_safetensors(spec, path)
    with translating_load_errors(spec, path):
        model = model_class.from_pretrained(path, dtype=dtype, use_safetensors=True)
    return model.to(device).eval(), path


def load_part(spec: ModelSpec, path: Path, part_class):
    """A processor, tokenizer or image processor stored beside the weights."""
    with translating_load_errors(spec, path):
        return part_class.from_pretrained(path)
