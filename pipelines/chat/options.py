"""What a chat request and its result look like: options with their limits, the bounds on a conversation, and what
one turn did. Imports no torch, so the UI can build its controls before any model loads."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.options import option, verify

MAX_NEW_TOKENS = 512  # the longest answer a user may ask for, in tokens
DEFAULT_NEW_TOKENS = 128  # when neither the caller nor the registry entry says
MAX_IMAGES_PER_CHAT = 4  # images in one conversation, all turns together: each is re-read (not re-encoded) per turn
MAX_MESSAGES = 64  # messages in one conversation (both roles); a longer chat is refused with "start a new chat"

# Why a turn's answer ended before the model finished it (ChatTurn.stopped); None: the model ended it itself.
STOPPED_BY_USER = "user"  # the caller's stop event was set
STOPPED_AT_DEADLINE = "deadline"  # the request's time budget ran out
STOPPED_AT_LENGTH = "length"  # max_new_tokens (or the model's context) was reached


@dataclass(frozen=True)
class ChatOptions:
    # length, in new tokens; None = the model's default (registry: 128, the toy 32)
    max_new_tokens: int | None = option(
        None,
        low=1,
        high=MAX_NEW_TOKENS,
        whole=True,
        optional=True,
        what="The maximum answer length (new tokens)",
        help="the answer stops at this length",
    )
    # greedy (do_sample=False) or nucleus sampling; temperature and top_p apply to sampling only
    do_sample: bool = option(False, what="do_sample", help="sample the answer instead of taking the likeliest words")
    temperature: float = option(
        0.7, low=0.1, high=2.0, step=0.1, what="The temperature", help="sampling: < 1 safer, > 1 more varied"
    )
    top_p: float = option(
        0.9,
        low=0.1,
        high=1.0,
        step=0.05,
        what="top-p",
        help="sampling: draw from the likeliest words that add up to this probability",
    )

    # how images are read; None = the model's default (registry: off, so a CPU reads one tile of each image)
    split_images: bool | None = option(
        None,
        flag=True,
        optional=True,
        what="split_images",
        help="also read large images tile by tile: finer detail (small text), up to 17 times the image tokens",
    )

    def verify(self) -> None:
        verify(self)


@dataclass(frozen=True)
class ChatTurn:
    """What one answer did, read from ``ChatReply.turn`` once its text has been iterated to the end."""

    text: str  # the answer: the streamed pieces joined (no leading space: send it back as the assistant message)
    new_tokens: int  # tokens generated
    prompt_tokens: int  # tokens of the whole conversation as the model read it (images included)
    cached_tokens: int  # of those, how many came from the conversation's key/value cache (0: all were encoded)
    images_encoded: int  # images run through the vision tower this turn (0: every image's tokens came from cache)
    stopped: str | None = None  # STOPPED_BY_USER, STOPPED_AT_DEADLINE or STOPPED_AT_LENGTH; None: the model ended it
    notes: tuple[str, ...] = ()  # what a user should be told: a message was cut, the answer may be unfinished, ...
    conversation: str | None = None

    @property
    def reused_cache(self) -> bool:
        return self.cached_tokens > 0
