"""The CLIP embedding space every tab shares: an open_clip model with its preprocessing and tokenizer.

torch and open_clip are imported when a space loads or encodes, so the UI can import this module cheaply.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..core.base import TakingTurns
from ..core.checkpoints import (
    OPEN_CLIP,
    checkpoint_dir,
    require_tokenizer_library,
    translating_load_errors,
    verify_pickle,
    weights_files,
)
from ..core.errors import InputError
from ..core.io import load_image
from ..core.limits import check_text
from ..core.registry import ModelSpec

if TYPE_CHECKING:
    import torch

# An open_clip checkpoint: open_clip_config.json, tokenizer files and one of open_clip_model.safetensors,
# open_clip_pytorch_model.safetensors, open_clip_pytorch_model.bin (never the transformers-format copy beside them).
OPEN_CLIP_FILES = OPEN_CLIP
BATCH_SIZE = 32  # images or texts per encoder call


class ClipSpace:
    """An open_clip model with its preprocessing and tokenizer; embeddings come out unit-length, float32."""

    def __init__(
        self,
        spec: ModelSpec,
        device: torch.device,
        dtype: torch.dtype,
        model,
        preprocess,
        tokenizer,
        fingerprint: str = "",
    ):
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
        check_text("A text", text)
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
            check_text("A text", text)  # the shared tokenizer never sees more than the limit
        tokens = list(self.tokenizer(list(texts))) if texts else []
        return self._encode(tokens, self.model.encode_text, "text")

    def _encode(self, items: list[torch.Tensor], encoder, tower: str) -> np.ndarray:
        import torch

        chunks = []
        for start in range(0, len(items), BATCH_SIZE):
            batch = torch.stack(items[start : start + BATCH_SIZE]).to(self.device)
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
