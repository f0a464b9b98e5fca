"""Accelerations: our replacements of a library's model internals, for speed, each behind one guard.

An acceleration is installed on one model instance only when

1. it applies: the library is in the version range it was written for, and the stock code it replaces still has
   the signature it relies on (a renamed argument would otherwise be swallowed silently), and
2. one small batch through the accelerated model gives the stock model's outputs: the same tokens, and logits
   within a tolerance at every decoding step (a decoder that ignores its cache or its history differs there).

Otherwise the model keeps the stock code, and one log line says why. ``Outcome`` is what the System panel shows.
``MM_ACCELERATIONS=off`` in the environment turns them all off (to compare with stock, or to rule them out).
Each acceleration stays in the project only while its benchmark row in ``bench/`` shows >= 1.2x over stock.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

SWITCH = "MM_ACCELERATIONS"  # environment variable: "off" runs every model stock


@dataclass(frozen=True)
class Outcome:
    """Whether a model runs an acceleration, and if not, why."""

    name: str
    active: bool
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.name}: on" if self.active else f"{self.name}: off, stock model ({self.reason})"


@dataclass(frozen=True)
class Acceleration:
    """What the guard needs to know about one acceleration.

    ``why_not(model)``: None when it applies, else the reason. ``install(model)``: patches the model, returns the
    function that undoes it. ``run(model, fast)``: the small check batch through the stock (``fast=False``) or the
    accelerated path. ``differences(model, stock, fast)``: None when the two outputs agree, else what differs.
    """

    name: str
    why_not: Callable[[Any], str | None]
    install: Callable[[Any], Callable[[], None]]
    run: Callable[[Any, bool], Any]
    differences: Callable[[Any, Any, Any], str | None]


def accelerate(model: Any, acceleration: Acceleration) -> Outcome:
    """Install ``acceleration`` on ``model`` if it applies and matches the stock model on its check batch."""
    name = acceleration.name
    if os.environ.get(SWITCH, "on").strip().lower() in ("off", "0", "false", "no"):
        return Outcome(name, False, f"turned off by {SWITCH}")
    reason = acceleration.why_not(model)
    if reason is None:
        stock = acceleration.run(model, False)
        undo = acceleration.install(model)
        try:
            reason = acceleration.differences(model, stock, acceleration.run(model, True))
        except Exception as error:  # a changed library can break our code anywhere: the stock model still works
            reason = f"it failed on the check batch: {type(error).__name__}: {error}"
        if reason is not None:
            undo()
    if reason is not None:
        log.warning("%s is off, the stock model runs: %s", name, reason)
        return Outcome(name, False, reason)
    log.info("%s is on: it matched the stock model on a check batch", name)
    return Outcome(name, True)


def version_outside(package: str, version: str, low: str, high: str) -> str | None:
    """None when ``low <= version < high``, else the reason an acceleration written for that range is off."""
    from packaging.version import Version

    if Version(low) <= Version(version) < Version(high):
        return None
    return f"written for {package} >={low},<{high}; this is {version}"


def unknown_parameters(function: Callable, known: set[str]) -> str | None:
    """None when every parameter of the stock ``function`` is one our replacement handles, else which are new."""
    names = set(inspect.signature(function).parameters) - {"self", "args", "kwargs"}
    new = sorted(names - known)
    if new:
        return f"{function.__qualname__} now takes {', '.join(new)}, which our replacement does not handle"
    return None


def tolerance(model) -> float:
    """The logit error allowed for ``model``'s precision, relative to a step's largest logit."""
    import torch

    return 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2


def logits_differences(stock, fast, tolerance: float) -> str | None:
    """None when two ``generate`` outputs have the same tokens and every step's logits (or scores) agree within
    ``tolerance`` relative to the step's largest stock logit; else what differs first."""
    import torch

    if not torch.equal(stock.sequences, fast.sequences):
        return "it generated other tokens than the stock model"
    steps = getattr(stock, "logits", None) or stock.scores
    fast_steps = getattr(fast, "logits", None) or fast.scores
    if len(steps) != len(fast_steps):
        return f"it took {len(fast_steps)} decoding steps where the stock model took {len(steps)}"
    for step, (a, b) in enumerate(zip(steps, fast_steps)):
        a, b = a.float(), b.float()
        finite = torch.isfinite(a)
        if not torch.equal(finite, torch.isfinite(b)):
            return f"its logits at step {step} are masked differently"
        scale = max(1.0, float(a[finite].abs().max())) if finite.any() else 1.0
        error = float((a[finite] - b[finite]).abs().max()) if finite.any() else 0.0
        if error > tolerance * scale:
            return f"its logits at step {step} differ by {error:.3g} (allowed {tolerance * scale:.3g})"
    return None
