"""Concurrent first turns of different chats decoded together: one left-padded ``generate`` for the group.

On a CPU (and more so on a GPU) one decoding step of a small model costs about the same for 1 row as for 4: the time
goes into reading the weights. Four chats that each run their own batch-1 ``generate`` read them four times a step;
one batched ``generate`` reads them once for all four.

Which turns join: a turn with no cache to reuse (a chat's first turn, or one whose cache is gone or held by another
request) waits up to ``WAIT`` seconds for other such turns of the same model with the same decoding settings (greedy,
or sampling with the same temperature and top-p); up to ``MAX_ROWS`` run as one group. They meet before preparing
their images' pixels (which each does in its own thread meanwhile), so that work does not spread their arrivals
past the window. A follow-up that reads its conversation's cache runs alone, as does a group of one.

Each row stays its own request:
- streaming: ``RowsStreamer.put`` receives one token per row per step and hands each row's token to that row's own
  TextIteratorStreamer (its own queue and incremental decoding);
- stopping: ``RowsStop`` returns one bool per row, so a row's Stop, its reader leaving, its deadline, its own
  max_new_tokens or its end of utterance ends that row only; ``generate`` goes on for the others (a finished row is
  fed padding until the group ends, which its reader never sees);
- its result: when a row ends, its reader gets the end of its stream at once, with the row's answer and its own
  slice of the group's key/value cache, the left padding cut off (``keys[b:b+1, :, pad_b:]`` per layer). ``generate``
  numbers each row's positions from its attention mask, so that slice holds what a batch-1 run of the row would
  hold: the conversation's next turn reuses it as usual.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..core import turns

# What this module handles, named for the reader (smolvlm imports this module, so it is not imported back):
Turn = Any  # a smolvlm._Turn: one request's turn
Chat = Any  # a smolvlm.SmolVlmChat: the pipeline whose model the group runs on

WAIT = 0.02  # seconds a first turn waits for other turns to decode with
MAX_ROWS = 8  # turns decoded together at most
GIVE_WAY_EVERY = 8  # steps between two looks for newer requests to let pass (turns.give_way)
SAMPLING = ("do_sample", "temperature", "top_p", "top_k")  # the generate options every row of a group shares


@dataclass
class _Group:
    turns: list = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class TurnBatcher:
    """Gathers the fresh turns of one loaded chat model that arrive within ``wait`` seconds into groups."""

    def __init__(self, wait: float = WAIT, max_rows: int = MAX_ROWS):
        self.wait, self.max_rows = wait, max_rows
        self._open: dict[tuple, _Group] = {}  # groups still taking turns, by decoding settings
        self._lock = threading.Lock()
        self.groups: list[int] = []  # rows of each group run so far, latest last (tests, benchmarks)

    def gather(self, turn: Turn) -> list[Turn]:
        """The group ``turn`` leads (itself first), once the window closes; [] when ``turn`` joined another turn's
        group (that turn's reader starts the generation)."""
        options = turn.options
        key = (True, options.temperature, options.top_p) if options.do_sample else (False,)
        with self._lock:
            group = self._open.get(key)
            if group is not None:
                group.turns.append(turn)
                if len(group.turns) >= self.max_rows:
                    group.full.set()
                    del self._open[key]
                return []
            group = self._open[key] = _Group([turn])
        group.full.wait(self.wait)
        with self._lock:
            if self._open.get(key) is group:
                del self._open[key]
            self.groups = [*self.groups[-999:], len(group.turns)]
            return list(group.turns)


def lead(pipeline: Chat, group: list[Turn]) -> None:
    """Run a gathered group (in its own thread) once each turn has prepared its inputs: alone as an unbatched turn,
    or together. A turn whose inputs failed (its reader raises the error) is left out."""
    rows = [turn for turn in group if turn.prepared.wait() and turn.kwargs]
    if len(rows) == 1:
        rows[0].generate_alone()
    elif rows:
        run_group(pipeline, rows)


def run_group(pipeline: Chat, rows: list[Turn]) -> None:
    """One ``generate`` for ``rows`` (each with its model inputs in ``row.kwargs`` and its own streamer): every
    row's result and cache slice are handed to the row as it ends."""
    width = max(row.kwargs["input_ids"].shape[1] for row in rows)
    pads = [width - row.kwargs["input_ids"].shape[1] for row in rows]
    cache = DynamicCache(config=pipeline.model.config)
    streamer = RowsStreamer(rows, pads, cache)
    tickets = [row.ticket for row in rows if row.ticket is not None]
    try:
        left = torch.nn.functional.pad  # (pad, 0): on the left, so every row's next token comes at the same column
        input_ids = [
            left(row.kwargs["input_ids"][0], (pad, 0), value=pipeline.pad_token_id) for row, pad in zip(rows, pads)
        ]
        attention_mask = [left(row.kwargs["attention_mask"][0], (pad, 0)) for row, pad in zip(rows, pads)]
        kwargs: dict[str, Any] = {
            "input_ids": torch.stack(input_ids),
            "attention_mask": torch.stack(attention_mask),
            **_pixels(rows),
            **{name: rows[0].kwargs[name] for name in SAMPLING},
            "max_new_tokens": max(row.max_new_tokens for row in rows),
            "eos_token_id": sorted(pipeline.eos_token_ids),
            "pad_token_id": pipeline.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([RowsStop(rows, streamer, pipeline.eos_token_ids)]),
            "streamer": streamer,
            "cache": cache,
            "use_cache": True,
            "return_dict_in_generate": True,
        }
        # Act for the row that goes first (the newest, a foreground one before any in the background): give way only
        # to requests that go before all of them, never to a row itself.
        with turns.acting_for(turns.first(tickets)), torch.inference_mode():
            pipeline.model.generate(**kwargs)
    except BaseException as error:  # noqa: BLE001 - handed to every row's reader, which raises it
        for row in streamer.live():
            row.outcome["error"] = error
            streamer.end_row(row)
    finally:
        for row in streamer.live():  # generate ended without RowsStop ending these rows (it never should)
            streamer.finish_row(row)


def _pixels(rows: list[Turn]) -> dict[str, torch.Tensor]:
    """The rows' image tiles as one batch: each row's tiles first, padded with all-zero tiles (the model drops them,
    as it drops the processor's own padding)."""
    with_pixels = [row.kwargs for row in rows if "pixel_values" in row.kwargs]
    if not with_pixels:
        return {}
    most = max(kwargs["pixel_values"].shape[1] for kwargs in with_pixels)
    batch = {}
    for name in ("pixel_values", "pixel_attention_mask"):
        shaped = next((kwargs[name] for kwargs in with_pixels if name in kwargs), None)
        if shaped is None:
            continue
        padded = shaped.new_zeros((len(rows), most, *shaped.shape[2:]))
        for b, row in enumerate(rows):
            if name in row.kwargs:
                padded[b, : row.kwargs[name].shape[1]] = row.kwargs[name][0]
        batch[name] = padded
    return batch


class RowsStreamer(BaseStreamer):
    """Hands each row's new token to that row's own streamer; ends a row (its result, its cache slice, the end of
    its stream) right after its last token."""

    def __init__(self, rows: list[Turn], pads: list[int], cache):
        self.rows, self.pads, self.cache = rows, pads, cache
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.ending: set[int] = set()  # rows RowsStop ended at this step: their token is their last
        self.ended: set[int] = set()

    def live(self) -> list[Turn]:
        return [row for b, row in enumerate(self.rows) if b not in self.ended]

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1:  # the prompts (generate puts them first): each row's streamer skips its own
            for b, row in enumerate(self.rows):
                row.streamer.put(value[b : b + 1])
            return
        for b, row in enumerate(self.rows):
            if b not in self.ended:
                self.tokens[b].append(int(value[b]))
                row.streamer.put(value[b : b + 1])
        for b in sorted(self.ending):
            self.finish_row(self.rows[b])
        self.ending.clear()

    def end(self) -> None:
        pass  # rows end one by one (finish_row); run_group ends any left

    def finish_row(self, row: Turn) -> None:
        """The row's answer and its slice of the cache as a batch-1 generate would return them; its stream ends."""
        b = self.rows.index(row)
        tokens = self.tokens[b]
        sequence = torch.tensor([row.ids + tokens], dtype=torch.long)
        # The cache holds every token the model has read: the row's prompt and all its new tokens but the last.
        read = slice(self.pads[b], self.pads[b] + len(row.ids) + max(len(tokens) - 1, 0))
        layers = [
            (layer.keys[b : b + 1, :, read].clone(), layer.values[b : b + 1, :, read].clone())
            for layer in self.cache.layers
        ]
        row.outcome["output"] = SimpleNamespace(sequences=sequence, cache=DynamicCache(ddp_cache_data=layers))
        self.end_row(row)

    def end_row(self, row: Turn) -> None:
        b = self.rows.index(row)
        if b in self.ended:
            return
        self.ended.add(b)
        row.streamer.end()
        row.finished.set()


class RowsStop(StoppingCriteria):
    """One bool per row: True once that row is done (its end of utterance, its own max_new_tokens, its Stop or
    reader gone, its deadline); every GIVE_WAY_EVERY steps, first lets newer requests pass (turns.give_way)."""

    def __init__(self, rows: list[Turn], streamer: RowsStreamer, eos_token_ids):
        self.rows, self.streamer, self.eos = rows, streamer, set(eos_token_ids)
        self.steps = 0
        now = time.monotonic()
        self.ends = [now + row.deadline.generation_seconds() if row.deadline is not None else None for row in rows]

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.steps += 1
        if self.steps % GIVE_WAY_EVERY == 0:
            deadlines = [row.deadline for row in self.streamer.live() if row.deadline is not None]
            turns.give_way(min(deadlines, key=lambda deadline: deadline.left()) if deadlines else None)
        now, last = time.monotonic(), input_ids[:, -1].tolist()
        done = []
        for b, row in enumerate(self.rows):
            ends = (
                b in self.streamer.ended
                or last[b] in self.eos
                or self.steps >= row.max_new_tokens
                or row.halt.is_set()
                or (row.stop is not None and row.stop.is_set())
                or (self.ends[b] is not None and now >= self.ends[b])
            )
            if ends and b not in self.streamer.ended:
                self.streamer.ending.add(b)  # its token of this step is streamed next, then the row ends
            done.append(ends)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
