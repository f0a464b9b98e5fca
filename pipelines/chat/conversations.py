"""Each conversation's key/value cache between its turns: a follow-up reads the earlier turns (and their images)
from the cache instead of encoding them again.

A bounded least-recently-used store, one per loaded chat model: at most ``max_conversations`` caches and
``max_bytes`` of tensors together; an evicted conversation's next turn encodes everything again (slower, never
wrong). A request *takes* its conversation's cache out of the store and puts it back when its answer is done, so
two requests never grow one cache at once: a second request of the same conversation meanwhile finds none and
starts from scratch. Imports torch only through the caches it holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_CONVERSATIONS = 8  # caches kept per loaded model
MAX_BYTES = 1 << 30  # bytes of cached keys and values kept per loaded model (1 GiB; SmolVLM2-256M: ~50 MB a chat)


@dataclass
class Cached:
    """A conversation's cache, the token ids it holds the keys and values of (in order) and a digest of each image's
    pixels, in the order the images come (every image reads as the same image tokens: only these tell them apart)."""

    cache: Any  # a transformers Cache
    ids: list[int]
    nbytes: int
    images: tuple[str, ...] = ()


class ConversationStore:
    def __init__(self, max_conversations: int = MAX_CONVERSATIONS, max_bytes: int = MAX_BYTES):
        self.max_conversations, self.max_bytes = max_conversations, max_bytes
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, conversation: str | None) -> Cached | None:
        """The conversation's cache, removed from the store (None: none kept, or no conversation)."""
        if conversation is None:
            return None
        with self._lock:
            return self._entries.pop(conversation, None)

    def put(self, conversation: str | None, cache: Any, ids: list[int], images: tuple[str, ...] = ()) -> None:
        """Keep ``cache`` (holding ``ids``, with the images of ``images``' digests) as the conversation's latest; the
        least recently used go past the bounds."""
        if conversation is None:
            return
        entry = Cached(cache, list(ids), cache_bytes(cache), tuple(images))
        with self._lock:
            self._entries.pop(conversation, None)
            if entry.nbytes > self.max_bytes:
                return  # larger than the whole store: its next turn starts from scratch
            self._entries[conversation] = entry
            while len(self._entries) > self.max_conversations or self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)

    def forget(self, conversation: str | None = None) -> None:
        """Drop one conversation's cache (a "new chat"), or every one."""
        with self._lock:
            if conversation is None:
                self._entries.clear()
            else:
                self._entries.pop(conversation, None)

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, conversation: str) -> bool:
        return conversation in self._entries


def cache_bytes(cache: Any) -> int:
    """Bytes of the tensors a transformers cache holds (its layers' keys and values)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for value in vars(layer).values():
            if hasattr(value, "element_size") and hasattr(value, "untyped_storage"):
                total += value.untyped_storage().nbytes()  # a cropped layer still holds its whole storage
    return total
