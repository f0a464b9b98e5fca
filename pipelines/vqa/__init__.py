"""Visual question answering: (image, question) pairs in, ranked answers out.

One class per model family, behind one interface (``pipelines.load("ask", model)``):
``blip.BlipVqa`` generates its answers (BLIP VQA); ``vilt.ViltVqa`` picks them from a fixed answer set (ViLT).
This package exports only the request and result types; the model classes import torch and load with their backend.
"""

from .options import Answer, AskOptions

__all__ = ["Answer", "AskOptions"]
