"""Chat about images: the request and result types (``options``), each conversation's key/value cache between
turns (``conversations``) and one module per model family (``smolvlm``: SmolVLM / SmolVLM2).

    chat = pipelines.load("chat")
    for piece in chat.generate(messages, conversation="chat-1"):
        print(piece, end="")

Only torch-free names are imported here, so the UI can build its controls before any model loads.
"""

from .options import MAX_IMAGES_PER_CHAT, MAX_MESSAGES, ChatOptions, ChatTurn

__all__ = ["ChatOptions", "ChatTurn", "MAX_IMAGES_PER_CHAT", "MAX_MESSAGES"]
