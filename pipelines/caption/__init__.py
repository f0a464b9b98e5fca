"""Image captioning: the request and result types (``options``), the shared captioner (``base``), one module per
model family (``blip``, ``vision_encoder_decoder``) and re-ranking with CLIP (``rerank``).

Only torch-free names are imported here, so the UI can build its controls before any model loads.
"""

from .options import Candidate, Caption, CaptionOptions

__all__ = ["Caption", "CaptionOptions", "Candidate"]
