"""ViLT VQA: one transformer over question tokens and image patches, then a classifier over a fixed answer set."""

from __future__ import annotations

from .base import Answer, AskOptions, VqaBatch, VqaPipeline


class ViltVqa(VqaPipeline):
    model_class_name = "ViltForQuestionAnswering"
    processor_class_name = "ViltProcessor"

    @property
    def max_question_tokens(self) -> int:
        return int(self.model.config.max_position_embeddings)

    def _forward(self, batch: VqaBatch, options: AskOptions):
        # ViLT reads question and image patches in one transformer: every pair needs its own pass.
        return self.model(**batch.text, **batch.pixels_per_pair()).logits

    def postprocess(self, logits, batch: VqaBatch, options: AskOptions) -> list[Answer]:
        questions, truncated = batch.questions, batch.truncated
        # Trained with a per-answer binary loss (VQA soft scores), so each answer's probability is its sigmoid.
        probabilities = logits.float().sigmoid().cpu()
        top = probabilities.topk(min(options.top_k, probabilities.shape[-1]), dim=-1)
        labels = self.model.config.id2label
        return [Answer(q, tuple((labels[i], p) for i, p in zip(ids.tolist(), ps.tolist())), cut)
                for q, ids, ps, cut in zip(questions, top.indices, top.values, truncated)]
