"""ViLT VQA: one transformer over question tokens and image patches, then a classifier over a fixed answer set."""

from __future__ import annotations

import torch

from .base import VqaBatch, VqaPipeline
from .options import Answer, AskOptions


class ViltVqa(VqaPipeline):
    model_class_name = "ViltForQuestionAnswering"
    processor_class_name = "ViltProcessor"

    @property
    def max_question_tokens(self) -> int:
        return int(self.model.config.max_position_embeddings)

    def _forward(self, batch: VqaBatch, options: AskOptions, deadline=None):  # one forward: nothing to stop
        # ViLT reads question and image patches in one transformer, so every pair needs its own rows. Images keep
        # their aspect ratio; one forward per image size spares the padded patches of a batch of mixed sizes.
        pixels = batch.pixels_per_pair()
        sizes = _sizes(pixels["pixel_mask"])
        logits = None
        for size in sorted(set(sizes)):
            rows = torch.tensor([i for i, s in enumerate(sizes) if s == size], device=self.device)
            height, width = size
            out = self.model(
                **{name: value[rows] for name, value in batch.text.items()},
                pixel_values=pixels["pixel_values"][rows, :, :height, :width],
                pixel_mask=pixels["pixel_mask"][rows, :height, :width],
            ).logits
            logits = out.new_empty(len(sizes), out.shape[-1]) if logits is None else logits
            logits[rows] = out
        return logits

    def postprocess(self, logits, batch: VqaBatch, options: AskOptions) -> list[Answer]:
        questions, truncated = batch.questions, batch.truncated
        # Trained with a per-answer binary loss (VQA soft scores), so each answer's probability is its sigmoid.
        probabilities = logits.float().sigmoid().cpu()
        top = probabilities.topk(min(options.top_k, probabilities.shape[-1]), dim=-1)
        labels = self.model.config.id2label
        return [
            Answer(q, tuple((labels[i], p) for i, p in zip(ids.tolist(), ps.tolist())), cut)
            for q, ids, ps, cut in zip(questions, top.indices, top.values, truncated)
        ]


def _sizes(pixel_mask: torch.Tensor) -> list[tuple[int, int]]:
    """(height, width) of each image inside its padding, from the processor's pixel mask."""
    return [(int(m.any(dim=1).sum()), int(m.any(dim=0).sum())) for m in pixel_mask]
