"""The shared fusion layer: one CLIP embedding space and the operators that combine modalities.

Early fusion combines embeddings before searching ("this photo, but blue"); late fusion combines the scores
that several sources gave the same candidates (a captioner's likelihood and CLIP's image-text similarity).
Every tab that needs CLIP goes through ``shared_space()``, so one instance serves them all. The operators need only
numpy; torch and open_clip are imported when a space loads or encodes, so the UI can import this module cheaply.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .base import TakingTurns
from .checkpoints import (OPEN_CLIP, checkpoint_dir, require_tokenizer_library, translating_load_errors, verify_pickle,
                          weights_files)
from .errors import InputError
from .io import load_image
from .registry import ModelSpec

if TYPE_CHECKING:
    import torch

# An open_clip checkpoint: open_clip_config.json, tokenizer files and one of open_clip_model.safetensors,
# open_clip_pytorch_model.safetensors, open_clip_pytorch_model.bin (never the transformers-format copy beside them).
OPEN_CLIP_FILES = OPEN_CLIP
BATCH_SIZE = 32  # images or texts per encoder call


class ClipSpace:
    """An open_clip model with its preprocessing and tokenizer; embeddings come out unit-length, float32."""

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model, preprocess, tokenizer,
                 fingerprint: str = ""):
        self.spec, self.device, self.dtype = spec, device, dtype
        self.model, self.preprocess = model, preprocess
        self.tokenizer = TakingTurns(tokenizer)  # a hub model's is a transformers tokenizer, shared by requests
        self.calls: Counter[str] = Counter()  # encoder forward passes, by tower (tests count reuse)
        # Names these exact weights at this precision: the key of every cached embedding.
        self.key = f"{spec.source}@{fingerprint or 'unknown'}/{str(dtype).removeprefix('torch.')}"

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "ClipSpace":
        import open_clip

        path = checkpoint_dir(spec, OPEN_CLIP_FILES)
        [weights] = weights_files(spec, path, OPEN_CLIP_FILES)
        # open_clip would pick a file by its own order (and start untrained when it finds none): we name the one
        # the policy chose. A .bin is first proven to hold only tensors by torch's restricted unpickler.
        verify_pickle(spec, weights)
        require_tokenizer_library(spec, path)
        with translating_load_errors(spec, weights):
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", load_weights=False)
            open_clip.load_checkpoint(model, str(weights), weights_only=True)
            tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
        model = model.to(device=device, dtype=dtype).eval()
        return cls(spec, device, dtype, model, preprocess, tokenizer, fingerprint=_fingerprint(path, weights))

    @property
    def context_length(self) -> int:
        """Tokens the text tower reads; longer texts are cut to this."""
        return int(getattr(self.tokenizer, "context_length", None) or self.model.context_length)

    @property
    def logit_scale(self) -> float:
        """The learned temperature that turns cosines into logits (for softmax over labels)."""
        return float(self.model.logit_scale.detach().exp()) if hasattr(self.model, "logit_scale") else 100.0

    def token_count(self, text: str) -> int:
        """How many tokens ``text`` takes, start and end tokens included (may exceed context_length)."""
        ids = self.tokenizer([text], context_length=4 * len(text) + 8)[0]
        pad = getattr(getattr(self.tokenizer, "tokenizer", None), "pad_token_id", None) or 0
        return int((ids != pad).sum())

    def pixels(self, image) -> torch.Tensor:
        """One image (path, bytes, PIL image or array) as the model's preprocessed input tensor."""
        return self.preprocess(load_image(image))

    def embed_pixels(self, pixels: Sequence[torch.Tensor]) -> np.ndarray:
        """(N, D) unit vectors for images already preprocessed by ``pixels`` (lets callers decode in parallel)."""
        return self._encode(list(pixels), self.model.encode_image, "image")

    def embed_images(self, images: Sequence) -> np.ndarray:
        """(N, D) unit vectors for images given as paths, bytes, PIL images or arrays."""
        pixels = [self.preprocess(load_image(image)) for image in images]
        return self._encode(pixels, self.model.encode_image, "image")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) unit vectors for texts (longer texts are cut to the model's context length)."""
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"Expected a non-empty text, got {text!r}. Type a few words to search for")
        tokens = list(self.tokenizer(list(texts))) if texts else []
        return self._encode(tokens, self.model.encode_text, "text")

    def _encode(self, items: list[torch.Tensor], encoder, tower: str) -> np.ndarray:
        import torch

        chunks = []
        for start in range(0, len(items), BATCH_SIZE):
            batch = torch.stack(items[start:start + BATCH_SIZE]).to(self.device)
            if batch.is_floating_point():
                batch = batch.to(self.dtype)
            with torch.inference_mode():
                features = encoder(batch)
            self.calls[tower] += 1
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def _fingerprint(path: Path, weights: Path) -> str:
    """A cheap content hash of a checkpoint: its configs plus the size, head and tail of the weights file loaded."""
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.json")) + [weights]:
        digest.update(file.name.encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
            continue
        size = file.stat().st_size
        digest.update(str(size).encode())
        with file.open("rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def similarity(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine similarity (Q, C) between rows of unit vectors."""
    return np.atleast_2d(queries) @ np.atleast_2d(candidates).T


def early_fusion(embeddings: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum of unit embeddings (one per modality), renormalised: a single query vector."""
    if len(embeddings) != len(weights) or not embeddings:
        raise InputError(f"Early fusion needs one weight per embedding; got {len(embeddings)} and {len(weights)}")
    fused = sum(w * _unit(e) for e, w in zip(embeddings, weights))
    norm = np.linalg.norm(fused, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise InputError("The weights cancel every embedding out; give at least one modality a non-zero weight")
    return (fused / norm).astype(np.float32)


def late_fusion(scores: Sequence[np.ndarray], weights: Sequence[float], *, rescale: bool = True) -> np.ndarray:
    """Weighted sum of per-candidate scores from several sources.

    With ``rescale`` each source's scores are first mapped to [0, 1] over the candidates, so a source that
    scores in logits does not drown one that scores in cosines.
    """
    if len(scores) != len(weights) or not scores:
        raise InputError(f"Late fusion needs one weight per score list; got {len(scores)} and {len(weights)}")
    total = np.zeros_like(np.asarray(scores[0], dtype=np.float64))
    for source, weight in zip(scores, weights):
        source = np.asarray(source, dtype=np.float64)
        if source.shape != total.shape:
            raise InputError(f"Every source must score the same candidates; got shapes {total.shape} and {source.shape}")
        total += weight * (_minmax(source) if rescale else source)
    return total


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max(axis=-1, keepdims=True) - x.min(axis=-1, keepdims=True)
    return np.where(span > 0, (x - x.min(axis=-1, keepdims=True)) / np.where(span > 0, span, 1), 0.5)


def shared_space(*, device=None, dtype=None) -> ClipSpace:
    """The one CLIP space of the configured profile (the Search model), loaded on first use."""
    from . import load

    return load("search", device=device, dtype=dtype).space
