"""SmolVLM behind the Caption and Ask tabs: one user turn per image (the image, then a text such as "Describe this
image in one sentence."), encoded with the model's chat template and answered by ``generate``.

``SmolVlmTurn`` is a mixin for a task's pipeline class (caption.smolvlm, vqa.smolvlm): it loads the checkpoint as
the chat family does (the same transformers classes through core.hf, so the same loading policy: safetensors first,
no remote code, fp32 on CPU and fp16 on CUDA; a snapshot without its template file gets SmolVLM's default one) and
reads every image as one tile (no image splitting), so each turn holds the same number of image tokens.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ..core.errors import ModelLoadError
from ..core.registry import defaults
from .smolvlm import _token_id, ensure_chat_template, render


class SmolVlmTurn:
    """A mixin before a TransformersPipeline subclass: a SmolVLM checkpoint, one turn per image."""

    model_class_name = "SmolVLMForConditionalGeneration"
    processor_class_name = "SmolVLMProcessor"

    def __init__(self, spec, device, dtype, model, processor):
        super().__init__(spec, device, dtype, model, processor)
        ensure_chat_template(self.spec, processor)
        tokenizer = self.processor.tokenizer
        generation = model.generation_config
        eos = generation.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        self.end_of_utterance_id = _token_id(tokenizer, processor.end_of_utterance_token)
        self.eos_token_ids = sorted({int(i) for i in [*eos, self.end_of_utterance_id] if i is not None})
        pad = generation.pad_token_id if generation.pad_token_id is not None else tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_ids[0]

    def prompt_template(self, fallback: str) -> str:
        """The registry's "prompt" for this model (its entry's defaults, else its family's), else ``fallback``."""
        prompt = defaults(self.spec).get("prompt", fallback)
        if not isinstance(prompt, str) or not prompt.strip():
            raise ModelLoadError(self.spec.name, "its registry prompt is empty", "Give it a prompt in registry.json")
        return prompt

    def encode_turns(self, images: list, texts: list[str]) -> dict[str, torch.Tensor]:
        """The chat template's prompt for each (image, text) as one user turn, tokenized and padded on the left (so
        every answer starts at the same column), with each image's pixels as one tile. Control tokens in a text
        ("<image>", "<end_of_utterance>") are read as plain text."""
        conversations = [
            [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]
            for image, text in zip(images, texts)
        ]
        return render(self.processor, conversations, do_image_splitting=False, padding=True, padding_side="left")

    @functools.cached_property
    def generate(self):
        """The model's ``generate``, ending answers at SmolVLM's end of utterance and padding with its pad token."""
        return functools.partial(self.model.generate, eos_token_id=self.eos_token_ids, pad_token_id=self.pad_token_id)

    def answer_only(self, output: Any, inputs: dict[str, torch.Tensor]) -> Any:
        """``output`` (generate's) with its sequences cut to the answers: generate returns each prompt too."""
        output.sequences = output.sequences[:, inputs["input_ids"].shape[1] :]
        return output
