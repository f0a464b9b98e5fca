"""Visual question answering: (image, question) pairs in, ranked answers out.

One class per model family, behind one interface (``pipelines.load("ask", model)``):
``BlipVqa`` generates its answers (BLIP VQA); ``ViltVqa`` picks them from a fixed answer set (ViLT).
"""

from .base import Answer, AskOptions, VqaPipeline
from .blip import BlipVqa
from .vilt import ViltVqa

__all__ = ["Answer", "AskOptions", "VqaPipeline", "BlipVqa", "ViltVqa"]
