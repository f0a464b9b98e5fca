"""What every task pipeline shares: the batched call (checkpoint helpers live in ``checkpoints``).

torch is imported by the model backends and on the first call here, not with this module: task modules that only
describe requests and results (and the UI that imports them) load without it.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from . import registry
from .budget import Deadline
from .errors import InputError
from .limits import check_count, limits
from .registry import ModelSpec

if TYPE_CHECKING:
    import torch

    from .checkpoints import Layout


class Pipeline:
    """preprocess -> _forward -> postprocess over a list of inputs, in batches, without autograd.

    Subclasses set ``Options`` (a frozen dataclass with a ``verify()`` method) and implement the three stages.
    Building one changes nothing process-wide (malloc tuning, thread counts): the app's entry point sets those.
    """

    Options: ClassVar[type]
    hub_files: ClassVar[Layout]  # the checkpoint family: which files a hub snapshot needs, which weights load
    batch_size: ClassVar[int] = 16  # inputs per forward pass: bounds memory on long lists
    # The most inputs one call takes: (what a refusal calls them, the Limits field, its variable); None: no bound.
    max_inputs: ClassVar[tuple[str, str, str] | None] = None
    accelerations: tuple = ()  # the fast.Outcome of each acceleration this model was offered

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype):
        if spec.backend == "auto":  # a checkpoint the registry does not name: it gets the defaults of our family
            spec = replace(spec, backend=registry.family_served_by(spec.task, type(self)) or "auto")
        self.spec, self.device, self.dtype = spec, device, dtype

    @property
    def description(self) -> str:
        where = f"{self.spec.name} ({self.spec.source}) on {self.device.type}, {str(self.dtype).removeprefix('torch.')}"
        return "; ".join([where, *map(str, self.accelerations)])

    def options(self, **overrides: Any):
        known = {f.name for f in fields(self.Options)}
        unknown = set(overrides) - known
        if unknown:
            raise InputError(f"Unknown option(s) {', '.join(sorted(unknown))}; expected: {', '.join(sorted(known))}")
        options = replace(self.Options(), **overrides)
        options.verify()
        return options

    def __call__(
        self,
        inputs: Sequence,
        *,
        deadline: Deadline | float | None = None,
        progress: Callable[[float], None] | None = None,
        **overrides: Any,
    ) -> list:
        """One result per input, with ``overrides`` as options; options and the inputs' bounds (``check_inputs``)
        are checked before any input is decoded.

        ``deadline`` (a Deadline, or seconds from now; None: no limit) and ``progress`` (for pipelines that report
        it: called with the fraction done) are not options: they go to ``_forward``, which says what it stops.
        """
        if progress is not None and not callable(progress):
            raise InputError(f"progress must be a function taking a fraction; got {type(progress).__name__}")
        options = self.options(**overrides)
        self.check_inputs(inputs)
        context = {"deadline": Deadline.of(deadline), "progress": progress}
        return self.run(inputs, options, **{name: value for name, value in context.items() if value is not None})

    def check_inputs(self, inputs: Sequence) -> None:
        """Refuse more inputs than one request may hold (``max_inputs``, read from limits() now)."""
        if self.max_inputs is None or isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            return  # no bound, or not a list: run() refuses it with its own message
        what, bound, variable = self.max_inputs
        check_count(what, len(inputs), getattr(limits(), bound), variable)

    def run(self, inputs: Sequence, options, **context: Any) -> list:
        """``inputs`` through the three stages in batches, with checked ``options``; ``context`` (what is not an
        option, e.g. a progress callback) goes to ``_forward``."""
        import torch

        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise InputError(f"Pipelines take a list of inputs; got {type(inputs).__name__}. Wrap one input as [x]")
        results: list = []
        for start in range(0, len(inputs), self.batch_size):
            batch = self.preprocess(list(inputs[start : start + self.batch_size]), options)
            with torch.inference_mode():
                outputs = self._forward(batch, options, **context)
            results.extend(self.postprocess(outputs, batch, options))
        return results

    def preprocess(self, inputs: list, options) -> Any:
        raise NotImplementedError

    def _forward(self, batch: Any, options) -> Any:
        raise NotImplementedError

    def postprocess(self, outputs: Any, batch: Any, options) -> list:
        raise NotImplementedError


class TakingTurns:
    """A tokenizer that concurrent requests use one at a time; every other attribute is the tokenizer's own.

    transformers' fast tokenizers keep padding and truncation settings on one Rust object, which each call rewrites
    to its own arguments: overlapping calls fail ("Already borrowed") or come back unpadded or uncut.
    """

    def __init__(self, tokenizer: Any):
        self._tokenizer, self._turn = tokenizer, threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._turn:
            return self._tokenizer(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        with self._turn:
            return self._tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        with self._turn:
            return self._tokenizer.batch_decode(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> "TakingTurns":  # a copy gets its own lock
        return TakingTurns(copy.deepcopy(self._tokenizer, memo))

    def __getattr__(self, name: str) -> Any:  # called only for what the wrapper itself lacks
        if name in ("_tokenizer", "_turn"):  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._tokenizer, name)
