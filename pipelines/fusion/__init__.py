"""The shared fusion layer: one CLIP embedding space (``space``) and the operators that combine modalities
(``operators``: early fusion of embeddings, late fusion of scores). The Fusion lab trains heads over the frozen
space: ``lab`` (examples, training, held-out scores), ``heads`` (the torch heads, export and reload), ``lab_tasks``
(bundled tasks), ``cache`` (their embeddings); import those by name.

Every tab that needs CLIP goes through ``shared_space()``, so one instance serves them all. Nothing here imports torch
at import time, so the UI can import this package cheaply.

Modules inside ``pipelines`` import ``fusion.space`` and ``fusion.operators`` directly, never this package: the
search task (which ``shared_space`` loads by name) imports the space, and going through here would close a cycle.
"""

from __future__ import annotations

from .operators import early_fusion, late_fusion, similarity
from .space import BATCH_SIZE, OPEN_CLIP_FILES, ClipSpace

__all__ = ["BATCH_SIZE", "OPEN_CLIP_FILES", "ClipSpace", "early_fusion", "late_fusion", "shared_space", "similarity"]


def shared_space(*, device=None, dtype=None) -> ClipSpace:
    """The one CLIP space of the configured profile (the Search model), loaded on first use."""
    from .. import load  # by registry name: the search task's module is imported by the loader, not by us

    return load("search", device=device, dtype=dtype).space
