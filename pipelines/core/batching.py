"""Dynamic batching across requests: calls that arrive together from different threads share one forward pass.

    batcher = Batcher(max_batch=8, wait=0.02)
    [caption] = batcher.run(captioner, [image], num_beams=3)     # from each request's own thread

Requests for the same pipeline with the same options that arrive within ``wait`` seconds of the first (or until
``max_batch`` inputs, or a smaller ``max_batch`` the caller gives: the most one call of that pipeline accepts, e.g.
``limits().images_per_request``) are joined into one call. Each request still gets its own result or its own error:
when a joined call fails, its requests are run again one by one, so one visitor's bad file never fails another's request
(Gradio's own ``batch=True`` gives every request in a batch the same error).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence


@dataclass
class _Group:
    run: Callable[[list], list]
    most: int  # inputs one joined call may hold
    inputs: list = field(default_factory=list)
    futures: list[Future] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class Batcher:
    def __init__(self, max_batch: int = 8, wait: float = 0.02):
        self.max_batch, self.wait = max_batch, wait
        self._open: dict[Hashable, _Group] = {}  # groups still taking inputs
        self._lock = threading.Lock()
        self.calls: deque[int] = deque(maxlen=1000)  # inputs per joined call, latest last (tests, benchmarks)

    def run(self, pipeline: Callable, inputs: Sequence, *, max_batch: int | None = None, **options: Any) -> list:
        """``pipeline(inputs, **options)``, joined with concurrent calls of the same pipeline and options into calls
        of at most ``max_batch`` inputs (at most the batcher's own), so that no joined call holds more than the
        pipeline accepts from one request."""
        key = (id(pipeline), tuple(sorted((name, _identity(value)) for name, value in options.items())))
        most = self.max_batch if max_batch is None else max(1, min(self.max_batch, max_batch))
        futures, leader = self._join(key, list(inputs), most, lambda batch: pipeline(batch, **options))
        if leader is not None:
            leader.full.wait(self.wait)  # let concurrent requests join
            with self._lock:
                if self._open.get(key) is leader:
                    del self._open[key]
            self._serve(leader)
        return [future.result() for future in futures]

    def _join(
        self, key: Hashable, inputs: list, most: int, run: Callable[[list], list]
    ) -> tuple[list[Future], _Group | None]:
        """This request's futures, and its group if this request leads it (runs it), else None."""
        with self._lock:
            group = self._open.get(key)
            leader = group is None or len(group.inputs) + len(inputs) > min(group.most, most)
            if group is not None and leader:
                group.full.set()  # no room left: its leader need not wait any longer
            if leader:
                group = self._open[key] = _Group(run, most)
            futures = [Future() for _ in inputs]
            group.inputs += inputs
            group.futures += futures
            if len(group.inputs) >= group.most:
                group.full.set()
        return futures, group if leader else None

    def _serve(self, group: _Group) -> None:
        self.calls.append(len(group.inputs))
        try:
            try:
                results = group.run(group.inputs)
            except Exception as error:  # someone's input is bad: find whose, and serve the others
                if len(group.inputs) == 1:
                    group.futures[0].set_exception(error)
                    return
                for future, item in zip(group.futures, group.inputs):
                    _run_alone(future, group.run, item)
                return
            for future, result in zip(group.futures, results, strict=True):
                future.set_result(result)
        finally:  # whatever went wrong, nobody waits for ever
            for future in group.futures:
                if not future.done():
                    future.set_exception(RuntimeError("The batched call gave no result for this input"))


def _run_alone(future: Future, run: Callable[[list], list], item) -> None:
    """Run one input on its own; its result or its exception goes to ``future``."""
    try:
        [result] = run([item])
    except Exception as error:
        future.set_exception(error)
    else:
        future.set_result(result)


batcher = Batcher()  # the process-wide one: the app's handlers share it


def _identity(value) -> Hashable:
    """What makes two options the same: equal plain values, or the very same object (a model, a gallery)."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else ("object", id(value))
