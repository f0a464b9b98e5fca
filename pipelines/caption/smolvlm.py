"""SmolVLM / SmolVLM2 as a captioner: each image in one user turn with the registry's prompt ("Describe this image
in one sentence."), the answer as the caption. Candidates come from beams or sampling as every captioner's do, each
scored by its mean log-probability per token (the end of utterance included), so the CLIP re-rank applies as is.
No text prefix: the caption is the model's answer to the prompt."""

from __future__ import annotations

import torch

from ..chat.one_turn import SmolVlmTurn
from .base import Captioner, timed

DEFAULT_PROMPT = "Describe this image in one sentence."  # where neither the model's entry nor its family names one


class SmolVlmCaptioner(SmolVlmTurn, Captioner):
    accepts_prefix = False

    def __init__(self, spec, device, dtype, model, processor):
        super().__init__(spec, device, dtype, model, processor)
        self.prompt = self.prompt_template(DEFAULT_PROMPT)

    def encode(self, images, options):
        return self.encode_turns(images, [self.prompt] * len(images))

    def _forward(self, inputs, options, deadline=None):
        return self.answer_only(timed(deadline, self.generate, inputs, options), inputs)

    def prompt_length(self, inputs):
        return 0  # _forward keeps only the answers' tokens

    def end_token_ids(self):
        return {*self.eos_token_ids, self.pad_token_id}

    def teacher_forced(self, inputs, captions):
        tokenizer = self.processor.tokenizer
        end = self.end_of_utterance_id if self.end_of_utterance_id is not None else self.eos_token_ids[0]
        # An answer starts after "Assistant:" with a space, which its first token carries (" The").
        encoded = [tokenizer(" " + caption, add_special_tokens=False)["input_ids"] + [end] for caption in captions]
        width = max(len(ids) for ids in encoded)
        targets = torch.tensor([ids + [end] * (width - len(ids)) for ids in encoded], device=self.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded], device=self.device)
        rows = len(captions)
        prompt = inputs["input_ids"].expand(rows, -1)
        images = {
            name: value.expand(rows, *value.shape[1:])
            for name, value in inputs.items()
            if name in ("pixel_values", "pixel_attention_mask")
        }
        logits = self.model(
            input_ids=torch.cat([prompt, targets[:, :-1]], dim=1),
            attention_mask=torch.cat([inputs["attention_mask"].expand(rows, -1), mask[:, :-1]], dim=1),
            **images,
        ).logits[:, prompt.shape[1] - 1 :]  # the logits that predict each caption token
        return logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0], targets
