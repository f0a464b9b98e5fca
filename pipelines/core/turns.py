"""Turns: which of the requests in progress goes first when they share the CPU cores (or the GPU).

Requests that run at once share the machine. With nothing else, a visitor's one-image caption that starts beside
another visitor's 32-image batch takes as long as both together, and a visitor who sends five requests at once gets
five times everyone else's share. Two rules, checked whenever a request calls ``give_way()``:

- **Visitors' first requests first.** A request's *position* is how many requests of the same visitor (client
  address) were in progress before it. From its start (``starting=True``) a request gives way to the requests of
  other visitors at a lower position: a visitor's fifth request at once waits while other visitors have their first
  one running. Requests of one visitor never wait for each other at their start.
- **Newer first, between steps.** Work that goes in steps (a few images, a window of speech, a batch of crops, a few
  tokens) gives way before each step after its first to the requests at a lower position, and at its own position to
  any that started after it. Short requests pass long ones, as an operating system favours interactive work; a long
  request goes on whenever nothing newer runs.

Each wait ends after LONGEST_WAIT seconds at most, or at the request's deadline (``budget.Deadline``, which keeps
counting while it waits): newer requests slow a long one down but never stop it.

    with turns.request("203.0.113.7"):      # around a whole request (demos.common.user_errors does this)
        turns.give_way(starting=True)
        for step in steps:
            if step is not steps[0]:
                turns.give_way(deadline)
            ...

Work outside a request (a background warm-up, the batcher's thread joining several requests) never waits.
Imports no torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .budget import Deadline

# Seconds one give_way() waits at most (and the whole wait when there is no deadline).
LONGEST_WAIT = 10.0

_changed = threading.Condition()
_in_progress: dict[int, str | None] = {}  # ticket -> visitor of each request in progress; later ones, larger tickets
_tickets = itertools.count()
_current: contextvars.ContextVar[int | None] = contextvars.ContextVar("mm_turns_request", default=None)


def begin(visitor: str | None = None) -> int:
    """A new request of ``visitor`` (a client address; None: unknown) is in progress: its ticket (to
    ``acting_for`` and ``end``)."""
    with _changed:
        ticket = next(_tickets)
        _in_progress[ticket] = visitor
    return ticket


def end(ticket: int) -> None:
    """The request of ``ticket`` is over: the requests that gave way to it may go on."""
    with _changed:
        _in_progress.pop(ticket, None)
        _changed.notify_all()


def current() -> int | None:
    """The ticket of the request the calling code works for (None: none)."""
    return _current.get()


@contextlib.contextmanager
def acting_for(ticket: int | None) -> Iterator[None]:
    """The code in this block works for the request of ``ticket`` (a streaming request's steps, or a pool's
    threads, may run on other threads: each says whose work it does)."""
    token = _current.set(ticket)
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def request(visitor: str | None = None) -> Iterator[None]:
    """A whole request of ``visitor``, in progress from entering the block to leaving it."""
    ticket = begin(visitor)
    try:
        with acting_for(ticket):
            yield
    finally:
        end(ticket)


def give_way(deadline: Deadline | None = None, *, starting: bool = False) -> float:
    """Wait while a request the rules above put first is in progress (``starting``: the current request has not
    begun its work, so only the per-visitor rule applies), at most LONGEST_WAIT seconds and never past ``deadline``.
    Returns the seconds waited (0 outside a request)."""
    ticket = _current.get()
    if ticket is None:
        return 0.0
    start = time.monotonic()
    stop = start + min(LONGEST_WAIT, deadline.left() if deadline is not None else LONGEST_WAIT)
    with _changed:
        while ticket in _in_progress and _outranked(ticket, starting):
            left = stop - time.monotonic()
            if left <= 0:
                break
            _changed.wait(left)
    return time.monotonic() - start


def _outranked(ticket: int, starting: bool) -> bool:
    """Whether a request in progress goes before the one of ``ticket`` (call holding ``_changed``).

    Requests are ordered by (position, newer first); every wait follows that order (a wait at the start only
    skips the same visitor's requests), so no two requests ever wait for each other."""
    keys, seen = {}, {}  # ticket -> (position, -ticket); visitor -> its requests counted so far (in ticket order)
    for other in sorted(_in_progress):
        visitor = _in_progress[other]
        position = seen.get(visitor, 0) if visitor is not None else 0
        seen[visitor] = position + 1
        keys[other] = (position, -other)
    mine, visitor = keys[ticket], _in_progress[ticket]
    if starting:
        return any(key[0] < mine[0] and _in_progress[other] != visitor for other, key in keys.items())
    return any(key < mine for key in keys.values())
