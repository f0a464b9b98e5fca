"""A request's time budget: the heavy paths stop cleanly when it is spent and say so, instead of holding a shared
model for minutes.

    deadline = Deadline()                 # limits().request_seconds from now (MM_MAX_REQUEST_SECONDS)
    for chunk in chunks:
        if done and deadline.stop_before_next_step():   # between units of work; a unit already started finishes
            notice = stopped_notice(done, total, "images")
            break
        model.generate(..., max_time=deadline.left())   # generation stops at the deadline too

The budget is **model time**: a request's clock starts once the models it needs are loaded, when its own work
begins. A cold load (or, off public mode, a typed model's download) is not the visitor's fault and must not leave a
request only its first unit of work. So a handler loads its pipelines first, then makes its Deadline; a pipeline
given a number of seconds (``Deadline.of``) starts the clock when it is called, i.e. when the (possibly joined)
batch runs. One request has one Deadline for all its steps (a spoken question's transcription and its answer).

A monotonic clock: a changed wall clock neither ends a request early nor lets it run on. Imports no torch.
"""

from __future__ import annotations

import time

from . import turns
from .limits import REQUEST_SECONDS_ENV, limits

# Generation given no time at all still has to make one step; this is the least it is asked to run for.
LEAST_GENERATION_SECONDS = 1e-3
STOPPED = "stopped_at_deadline"  # the attribute that marks a generate output which ran until the deadline


class Deadline:
    """A point in time ``seconds`` from now (default: the per-request limit in force)."""

    def __init__(self, seconds: float | None = None):
        self.seconds = float(limits().request_seconds if seconds is None else seconds)
        self._end = time.monotonic() + self.seconds

    @classmethod
    def of(cls, value: Deadline | float | None) -> Deadline | None:
        """``value`` as a Deadline: one as it is, a number of seconds from now, or None (no limit)."""
        if value is None or isinstance(value, Deadline):
            return value
        return cls(float(value))

    def left(self) -> float:
        """Seconds until the deadline; 0 once it has passed."""
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._end

    def stop_before_next_step(self) -> bool:
        """Between two steps of a request's work: first give way to the requests that came after it
        (``turns.give_way``), then whether the deadline has passed, so the next step should not start."""
        turns.give_way(self)
        return self.expired()

    def generation_seconds(self) -> float:
        """What to give transformers' ``generate(max_time=...)``: the time left, never zero."""
        return max(LEAST_GENERATION_SECONDS, self.left())

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g} s, {self.left():.3f} s left)"


def limit_phrase(seconds: float) -> str:
    """'the time limit per request is 60 s (MM_MAX_REQUEST_SECONDS)'."""
    return f"the time limit per request is {seconds:g} s ({REQUEST_SECONDS_ENV})"


def stopped_notice(done: int, total: int, what: str, deadline: Deadline) -> str:
    """What a request that stopped early says: 'Stopped after 12 of 32 images: the time limit per request is 60 s
    (MM_MAX_REQUEST_SECONDS). Send the rest in another request.'"""
    limit = limit_phrase(deadline.seconds)
    return f"Stopped after {done} of {total} {what}: {limit}. Send the rest in another request."


def unfinished_notice(what: str, seconds: float) -> str:
    """What a result cut short by generation's time limit says: 'The caption may be unfinished: the time limit per
    request is 60 s (MM_MAX_REQUEST_SECONDS).' (``seconds``: the request's limit, ``Deadline.seconds``)."""
    return f"{what} may be unfinished: {limit_phrase(seconds)}."


def mark_stopped(output, deadline: Deadline | None):
    """``output`` (a transformers generate output), marked STOPPED if ``deadline`` passed while it was generated:
    an attribute, not a key, so the output otherwise reads as generate's own."""
    if deadline is not None and deadline.expired():
        setattr(output, STOPPED, True)
    return output


def stopped(output) -> bool:
    """Whether ``mark_stopped`` marked ``output``."""
    return bool(getattr(output, STOPPED, False))
