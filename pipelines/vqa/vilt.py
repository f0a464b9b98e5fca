"""ViLT VQA: one transformer over question tokens and image patches, then a classifier over a fixed answer set."""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from .base import VqaBatch, VqaPipeline
from .options import Answer, AskOptions


class ViltVqa(VqaPipeline):
    model_class_name = "ViltForQuestionAnswering"
    processor_class_name = "ViltProcessor"

    def __init__(self, spec, device, dtype, model, processor):
        use_sdpa(model)
        answer_from_first_token(model)
        super().__init__(spec, device, dtype, model, processor)

    @property
    def max_question_tokens(self) -> int:
        return int(self.model.config.max_position_embeddings)

    def _forward(self, batch: VqaBatch, options: AskOptions):
        # ViLT reads question and image patches in one transformer, so every pair needs its own rows. Images keep
        # their aspect ratio; one forward per image size spares the padded patches of a batch of mixed sizes.
        pixels = batch.pixels_per_pair()
        sizes = _sizes(pixels["pixel_mask"])
        logits = None
        for size in sorted(set(sizes)):
            rows = torch.tensor([i for i, s in enumerate(sizes) if s == size], device=self.device)
            height, width = size
            out = self.model(**{name: value[rows] for name, value in batch.text.items()},
                             pixel_values=pixels["pixel_values"][rows, :, :height, :width],
                             pixel_mask=pixels["pixel_mask"][rows, :height, :width]).logits
            logits = out.new_empty(len(sizes), out.shape[-1]) if logits is None else logits
            logits[rows] = out
        return logits

    def postprocess(self, logits, batch: VqaBatch, options: AskOptions) -> list[Answer]:
        questions, truncated = batch.questions, batch.truncated
        # Trained with a per-answer binary loss (VQA soft scores), so each answer's probability is its sigmoid.
        probabilities = logits.float().sigmoid().cpu()
        top = probabilities.topk(min(options.top_k, probabilities.shape[-1]), dim=-1)
        labels = self.model.config.id2label
        return [Answer(q, tuple((labels[i], p) for i, p in zip(ids.tolist(), ps.tolist())), cut)
                for q, ids, ps, cut in zip(questions, top.indices, top.values, truncated)]


def _sizes(pixel_mask: torch.Tensor) -> list[tuple[int, int]]:
    """(height, width) of each image inside its padding, from the processor's pixel mask."""
    return [(int(m.any(dim=1).sum()), int(m.any(dim=0).sum())) for m in pixel_mask]


def use_sdpa(model: torch.nn.Module) -> int:
    """Make ``model``'s ViLT self-attention layers use torch's fused attention (transformers runs them eagerly:
    scores, scaling, mask, softmax and mix in separate passes). Same result up to float rounding."""
    layers = [m for m in model.modules() if type(m).__name__ == "ViltSelfAttention"]
    for layer in layers:
        layer.forward = types.MethodType(_fused_attention, layer)
    return len(layers)


def _fused_attention(self, hidden_states: torch.Tensor, attention_mask=None, output_attentions=False):
    if output_attentions or self.training:  # the fused kernel returns no attention map; training needs dropout
        return type(self).forward(self, hidden_states, attention_mask, output_attentions)
    # attention_mask: ViLT's additive mask (0 where attended, a large negative number at padding)
    return (_attend(self, hidden_states, hidden_states, attention_mask),)


def _attend(attention, queries: torch.Tensor, states: torch.Tensor, mask) -> torch.Tensor:
    """Fused attention of ``queries``' positions to ``states``' (hidden states both) through a ViltSelfAttention's
    projections: (batch, query positions, width)."""
    def heads(projection, hidden):
        shape = (hidden.shape[0], hidden.shape[1], attention.num_attention_heads, attention.attention_head_size)
        return projection(hidden).view(shape).transpose(1, 2)

    context = F.scaled_dot_product_attention(heads(attention.query, queries), heads(attention.key, states),
                                             heads(attention.value, states), attn_mask=mask)
    return context.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], attention.all_head_size)


def answer_from_first_token(model: torch.nn.Module) -> None:
    """Run ``model``'s last ViLT layer for the first token only: the classifier reads nothing else.

    ViLT's answer comes from the pooler, which reads the first token of the last layer's output. Every position's
    keys and values still feed that token's attention, but the query, the attention output and the feed-forward
    are needed for the first token alone: about 7 % of ViLT-B/32's work is skipped. The model's
    ``last_hidden_state`` (and the last of its hidden states) then holds that token only; asking for attentions runs
    the full layer.
    """
    last = model.vilt.encoder.layer[-1]
    last.forward = types.MethodType(_first_token_layer, last)


def _first_token_layer(self, hidden_states: torch.Tensor, attention_mask=None, output_attentions=False):
    if output_attentions or self.training:
        return type(self).forward(self, hidden_states, attention_mask, output_attentions)
    normed = self.layernorm_before(hidden_states)
    if attention_mask is not None and attention_mask.shape[-2] > 1:
        attention_mask = attention_mask[..., :1, :]  # the first query's row of a (query, key) mask
    context = _attend(self.attention.attention, normed[:, :1], normed, attention_mask)
    first = self.attention.output(context, None) + hidden_states[:, :1]
    return (self.output(self.intermediate(self.layernorm_after(first)), first),)
