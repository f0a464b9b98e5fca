"""Loading transformers checkpoints in the pipeline's device and dtype, by the policy of checkpoints.py:
safetensors (single or sharded) first, else PyTorch .bin weights through torch's restricted unpickler."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from .base import Pipeline, TakingTurns
from .checkpoints import TRANSFORMERS, checkpoint_dir, require_tokenizer_library, translating_load_errors, weights_files
from .registry import ModelSpec


def load_pretrained(spec: ModelSpec, model_class, device: torch.device, dtype: torch.dtype):
    """(model, checkpoint directory) for ``spec``, in eval mode on ``device`` in ``dtype``."""
    path = checkpoint_dir(spec, TRANSFORMERS)
    weights = weights_files(spec, path, TRANSFORMERS)
    require_tokenizer_library(spec, path)
    # Tell transformers which format we chose (it prefers safetensors the same way) and that a .bin goes through
    # torch's restricted unpickler only: it then raises UnpicklingError, which becomes our refusal message.
    safetensors = weights[0].name.startswith("model.safetensors")
    with translating_load_errors(spec, weights[0] if len(weights) == 1 else path):
        model = model_class.from_pretrained(path, dtype=dtype, use_safetensors=safetensors, weights_only=True)
    return model.to(device).eval(), path


def load_part(spec: ModelSpec, path: Path, part_class):
    """A processor, tokenizer or image processor stored beside the weights."""
    with translating_load_errors(spec, path):
        return part_class.from_pretrained(path)


class TransformersPipeline(Pipeline):
    """A pipeline over one transformers model and its processor, both read from one checkpoint."""

    hub_files = TRANSFORMERS
    model_class_name: ClassVar[str]  # the transformers classes of this family
    processor_class_name: ClassVar[str]

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model, processor):
        super().__init__(spec, device, dtype)
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None and not isinstance(tokenizer, TakingTurns):  # requests share it (see TakingTurns)
            processor.tokenizer = TakingTurns(tokenizer)
        self.model, self.processor = model, processor

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype):
        import transformers

        model, path = load_pretrained(spec, getattr(transformers, cls.model_class_name), device, dtype)
        return cls(spec, device, dtype, model, cls.load_processor(spec, path))

    @classmethod
    def load_processor(cls, spec: ModelSpec, path: Path):
        import transformers

        return load_part(spec, path, getattr(transformers, cls.processor_class_name))
