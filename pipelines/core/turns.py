"""Turns: a long request gives way, between its steps, to the requests that came after it.

Requests that run at once share the CPU cores (or the GPU). With nothing else, a visitor's one-image caption that
starts beside another visitor's 32-image batch takes as long as both together. So work that goes in steps (a few
images, a window of speech, a few tokens) calls ``give_way()`` before each step after its first: it waits while any
request that started after it is still in progress, then goes on. Short requests pass long ones, as an operating
system favours interactive work; a long request goes on whenever nothing newer runs. Each wait ends after
LONGEST_WAIT seconds at most, or at the request's deadline (``budget.Deadline``, which keeps counting while it
waits): newer requests slow a long one down but never stop it. (How many requests one visitor may run at once is
the queue's business: demos/fairness.py.)

A request may run in the **background** (the queue says so for a visitor that never pauses while others use the
server): it gives way to every request that is not, newer or older, before its first step too, and nobody in the
foreground gives way to it.

    with turns.request():            # around a whole request (demos.common.user_errors does this for every handler)
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
from typing import Protocol

# Seconds one give_way() waits at most (and the whole wait when there is no deadline).
LONGEST_WAIT = 10.0


class Deadline(Protocol):
    """What give_way reads of a request's deadline (a ``budget.Deadline``; budget imports this module)."""

    def left(self) -> float: ...


_changed = threading.Condition()
_in_progress: set[int] = set()  # the tickets of the requests in progress; a later request has a larger ticket
_background: set[int] = set()  # those of them that run in the background
_tickets = itertools.count()
_current: contextvars.ContextVar[int | None] = contextvars.ContextVar("mm_turns_request", default=None)


def begin(*, background: bool = False) -> int:
    """A new request is in progress: its ticket (to ``acting_for`` and ``end``)."""
    with _changed:
        ticket = next(_tickets)
        _in_progress.add(ticket)
        if background:
            _background.add(ticket)
    return ticket


def end(ticket: int) -> None:
    """The request of ``ticket`` is over: the requests that gave way to it may go on."""
    with _changed:
        _in_progress.discard(ticket)
        _background.discard(ticket)
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
def request(*, background: bool = False) -> Iterator[None]:
    """A whole request, in progress from entering the block to leaving it; one in the ``background`` first lets
    those in the foreground pass (``let_foreground_pass``)."""
    ticket = begin(background=background)
    try:
        with acting_for(ticket):
            let_foreground_pass()
            yield
    finally:
        end(ticket)


def give_way(deadline: Deadline | None = None) -> float:
    """Between two steps: wait while a request that goes first is in progress (one that started after the current
    one; for one in the background, any that is not), at most LONGEST_WAIT seconds and never past ``deadline``.
    Returns the seconds waited (0 outside a request)."""
    return _wait(lambda other, ticket: _rank(other) > _rank(ticket), deadline)


def let_foreground_pass(deadline: Deadline | None = None) -> float:
    """Before a background request's first step: wait while requests that are not in the background are in
    progress, as ``give_way`` waits. Returns the seconds waited (0 outside a request or in the foreground)."""
    return _wait(lambda other, ticket: ticket in _background and other not in _background, deadline)


def _wait(goes_first, deadline: Deadline | None) -> float:
    """Wait while ``goes_first(other, ticket)`` for some request in progress, as ``give_way`` says."""
    ticket = _current.get()
    if ticket is None:
        return 0.0
    start = time.monotonic()
    stop = start + min(LONGEST_WAIT, deadline.left() if deadline is not None else LONGEST_WAIT)
    with _changed:
        while any(goes_first(other, ticket) for other in _in_progress):
            left = stop - time.monotonic()
            if left <= 0:
                break
            _changed.wait(left)
    return time.monotonic() - start


def first(tickets) -> int | None:
    """Of ``tickets`` (requests whose work is done together, as one), the one that goes first (None: none)."""
    with _changed:
        return max(tickets, key=_rank, default=None)


def _rank(ticket: int) -> tuple[bool, int]:
    """Who goes first: requests in the foreground before those in the background, then the newer. Under _changed."""
    return ticket not in _background, ticket
