"""Fair queueing: no visitor can fill the queue, and nobody waits behind one visitor's whole backlog.

Gradio's queue turns requests away only when it is full (``demo.queue(max_size=...)``), so one client that sends
65 jobs gets every other visitor "Queue is full". ``install(demo)`` wraps the demo's ``Queue.push`` and
``Queue.get_events`` with four rules:

- **A cap per visitor:** a job is refused at once, with a message that reaches gradio_client and the browser as any
  ``gr.Error`` does, when its browser session already has ``limits().queued_per_visitor`` jobs waiting or running,
  or its client address ``limits().queued_per_address`` (a session id is the client's to choose; an address is not).
  Each such refusal waits in Gradio's per-session tables until its client reads it: past a few unread ones per
  address (``UNREAD_PER_ADDRESS``, or ``UNREAD_TOTAL`` in all), a refusal is a plain HTTP error instead, and an
  unread one is dropped after ``UNREAD_KEPT`` seconds, so a client that floods without reading grows nothing.
- **Turns within a lane:** a new job waits behind the jobs of visitors (addresses) that have fewer in that lane than
  it, not behind a whole backlog: with one of A's long jobs running and three waiting, B's job runs next.
- **A slot kept free:** one address runs at most all but one of a lane's slots at once (at least one), so with two
  slots for whole-model jobs, B's job starts while A's longest allowed job still runs.
- **One model job per address on a busy server:** while more than one address has model jobs (``MODEL_LANES``)
  running or waiting, an address with one running starts no other until it ends. A visitor who sends five requests
  at once cannot take five shares of the CPU from everyone else; alone on the server, it may.
- **Who never pauses goes last:** an address that has had jobs waiting or running nearly all the time lately
  (``Occupancy``: more than ``STEADY_SHARE`` of a decaying window) starts a model job on a busy server only when
  no other address has one running or waiting, or when it has run none for ``STEADY_PATIENCE`` seconds. People
  pause to read a result; a script at the limits does not, and now fills the gaps the others leave instead of
  halving their share of the cores. Its requests run in the background (``in_background``, ``turns``): their
  work lets everyone else's requests pass between its steps, and nobody's waits for theirs.

The client address is the one Gradio's server (uvicorn) gives the request: it honours ``X-Forwarded-For`` only from
the proxies named in ``FORWARDED_ALLOW_IPS`` (by default loopback, so a visitor cannot forge an address by sending
the header). On a Hugging Face Space the proxy is on a private network: ``space_proxies()`` says which to trust.

This leans on Gradio's queue internals (checked against gradio 6.31). ``install`` checks first that what it uses
is there; if not, it logs a warning and changes nothing (Gradio's global ``max_size`` still applies): never a crash.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
import uuid
import weakref
from collections import Counter, OrderedDict
from types import SimpleNamespace

import gradio as gr
from gradio.context import LocalContext

from pipelines.core import limits

log = logging.getLogger(__name__)

TITLE = "Too many requests"
UNREAD_PER_ADDRESS = 8  # refusals an address has not read yet; past them it gets its refusals as HTTP errors
UNREAD_TOTAL = 500  # the same, all addresses together
UNREAD_KEPT = 60  # seconds an unread refusal waits for its client before it is dropped
# Seconds an HTTP refusal is held before it is sent: a client that floods without reading its refusals would
# otherwise get each one at once and send the next (uploading its files again) in a tight loop. Waiting costs the
# server nothing (no thread, no CPU).
REFUSAL_PAUSE = 2.0
# The networks a Space's own proxies sit on: X-Forwarded-For is read from these, right to left, up to the first
# address outside them (the visitor's; anything to its left the visitor could have written).
PRIVATE_NETWORKS = "127.0.0.0/8,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
# The lanes of the jobs that run a model (demos.common names them): model jobs of their own, and those that
# pipelines.core.batching joins into shared forward passes.
GPU = "model-device"
BATCHED = "batched-models"
MODEL_LANES = (GPU, BATCHED)
# An address is steady when it has had jobs waiting or running for more than this share of the recent past, a
# window that halves its weight every OCCUPANCY_HALF_LIFE seconds (one never pausing gets there in about 40 s). A
# person reading results stays well below it, even on a slow server.
STEADY_SHARE = 0.9
OCCUPANCY_HALF_LIFE = 12.0
# The queue looks at who holds jobs when a job joins and while jobs wait; of a longer time it did not look, only this
# many seconds count for those seen holding jobs last (they may have finished at once and paused to read).
UNSEEN_SECONDS = 2.0
STEADY_PATIENCE = 30.0  # seconds a steady address's job waits for the others at most, so it is never starved
QUEUE_ATTRIBUTES = (  # what the fair queue reads or calls on gradio's Queue
    "push",
    "get_events",
    "event_ids_to_events",
    "event_queue_per_concurrency_id",
    "active_jobs",
    "pending_messages_per_session",
    "pending_event_ids_session",
    "pending_message_lock",
)
EVENT_ATTRIBUTES = ("_id", "session_hash", "request", "concurrency_id", "data")


def install(demo: gr.Blocks, *, per_visitor: int | None = None, per_address: int | None = None) -> FairQueue | None:
    """Make ``demo``'s queue fair (call after ``demo.queue()``); the caps default to ``limits()``.

    Returns the FairQueue, or None (and a logged warning) when this Gradio's queue is not the one this module
    knows: the demo then serves as before, bounded only by the queue's ``max_size``.
    """
    queue = getattr(demo, "_queue", None)
    missing = missing_internals(queue)
    if missing:
        log.warning(
            "Fair queueing is off: gradio %s's queue lacks %s. Each visitor's jobs are not capped; only the queue's "
            "size (%s) turns requests away.",
            gr.__version__,
            ", ".join(missing),
            getattr(queue, "max_size", "unbounded"),
        )
        return None
    bounds = limits.limits()
    fair = FairQueue(
        queue,
        per_visitor=bounds.queued_per_visitor if per_visitor is None else per_visitor,
        per_address=bounds.queued_per_address if per_address is None else per_address,
    )
    size = getattr(queue, "max_size", None)
    if size is not None and size <= fair.per_address:
        log.warning(
            "The queue holds %s jobs, no more than one address may have (%s): one client can fill it for everyone. "
            "Give demo.queue() a larger max_size or lower MM_MAX_QUEUED_PER_ADDRESS.",
            size,
            fair.per_address,
        )
    _installed.add(fair)
    queue.push = fair.push  # routes call blocks._queue.push(body=, request=, username=)
    queue.get_events = fair.get_events  # the queue's loop calls self.get_events() for the next job to start
    return fair


def missing_internals(queue) -> list[str]:
    """The names of what fair queueing needs from Gradio and ``queue`` lacks (empty when all is there)."""
    if queue is None:
        return ["a queue (call demo.queue() first)"]
    missing = [name for name in QUEUE_ATTRIBUTES if not hasattr(queue, name)]
    if hasattr(queue, "get_events") and inspect.signature(queue.get_events).parameters:
        missing.append("get_events()")
    push = getattr(queue, "push", None)
    if push is not None and not {"body", "request", "username"} <= set(inspect.signature(push).parameters):
        missing.append("push(body, request, username)")
    try:  # events and lanes are built later, per request: probe one of each
        from gradio import queueing

        event = queueing.Event(None, SimpleNamespace(concurrency_id="probe"), None, None)
        missing += [f"Event.{name}" for name in EVENT_ATTRIBUTES if not hasattr(event, name)]
        lane = queueing.EventQueue("probe", 1)
        if not isinstance(getattr(lane, "queue", None), list) or not hasattr(lane, "concurrency_limit"):
            missing.append("EventQueue.queue, .concurrency_limit")
        from gradio.server_messages import ProcessCompletedMessage  # noqa: F401
        from gradio.utils import error_payload  # noqa: F401
    except Exception as error:  # an import or a signature that moved
        missing.append(f"queueing internals ({type(error).__name__}: {error})")
    return missing


_installed: weakref.WeakSet[FairQueue] = weakref.WeakSet()  # the fair queues of the demos served in this process


def in_background() -> bool:
    """Whether the request handled on this thread (Gradio's context says which) comes from a steady address while
    others hold jobs too: its work should let theirs pass (``turns.request(background=True)``)."""
    try:
        request = LocalContext.request.get(None)
        return request is not None and any(fair.in_background(client_address(request)) for fair in list(_installed))
    except Exception:  # never let the fairness layer stop a request
        log.exception("a request runs in the foreground")
        return False


def client_address(request) -> str:
    """The client address Gradio's server gives ``request`` (after its trusted-proxy rule), or "unknown"."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def space_proxies(environ=os.environ) -> str | None:
    """The ``FORWARDED_ALLOW_IPS`` a server should start with, or None to leave uvicorn's default (loopback).

    On a Hugging Face Space (``SPACE_ID`` set) every request comes through the Space's proxy on a private network,
    so every visitor would share the proxy's address: trust the private networks' X-Forwarded-For instead. An
    explicit ``FORWARDED_ALLOW_IPS`` always wins.
    """
    if environ.get("SPACE_ID") and not environ.get("FORWARDED_ALLOW_IPS"):
        return PRIVATE_NETWORKS
    return None


def lane_share(concurrency_limit: int | None) -> int | None:
    """How many of a lane's slots one address may run at once: all but one, at least one (None: no limit)."""
    return None if concurrency_limit is None else max(1, concurrency_limit - 1)


class Occupancy:
    """How much of the recent past each address has had jobs waiting or running: a share from 0 to 1, each moment
    weighing half as much every ``half_life`` seconds. ``observe`` is told who holds jobs now; the time since the
    last observation, up to UNSEEN_SECONDS of it, counts for those who held jobs then."""

    def __init__(self, half_life: float | None = None, clock=time.monotonic):
        self.half_life, self._clock = half_life or OCCUPANCY_HALF_LIFE, clock
        self.share: dict[str, float] = {}
        self._holding: set[str] = set()
        self._since = clock()

    def observe(self, holding: set[str]) -> None:
        now = self._clock()
        elapsed = now - self._since
        counted = min(elapsed, UNSEEN_SECONDS)
        kept = 0.5 ** (elapsed / self.half_life)  # the weight left to the past
        earned = (1 - 0.5 ** (counted / self.half_life)) * 0.5 ** ((elapsed - counted) / self.half_life)
        shares = {}  # built aside and swapped in whole: handlers' threads read it meanwhile (steady)
        for address in self.share.keys() | self._holding:
            share = self.share.get(address, 0.0) * kept + earned * (address in self._holding)
            if share >= 0.01 or address in holding:  # else long gone: a flood from many addresses leaves no trail
                shares[address] = share
        self.share, self._holding, self._since = shares, set(holding), now

    def steady(self, share: float = STEADY_SHARE) -> set[str]:
        """The addresses that have held jobs more than ``share`` of the recent past."""
        return {address for address, held in self.share.items() if held > share}


class FairQueue:
    """Gradio's ``Queue.push`` with the caps and the turns described in the module docstring."""

    def __init__(self, queue, *, per_visitor: int, per_address: int):
        self.queue, self.per_visitor, self.per_address = queue, per_visitor, per_address
        self._gradio_push, self._gradio_get_events = queue.push, queue.get_events
        # Pushes in progress: id(body) -> its keys, (kind, key); concurrent joins count too, until Gradio holds the
        # event (whose .data is the body).
        self._joining: dict[int, list[tuple[str, str]]] = {}
        self._unread: OrderedDict[str, tuple[float, str, str]] = OrderedDict()  # event id -> (when, address, session)
        self.occupancy = Occupancy()
        self._joined: dict[str, float] = {}  # event id -> when it joined the queue (for STEADY_PATIENCE)
        self._ran: dict[str, float] = {}  # address -> when it was last seen running a model job (the same)
        self.refused = 0  # jobs turned away so far (the tests read it)

    async def push(self, body, request, username):
        """Refuse the job if its visitor or address has too many; else Gradio's push, then the job takes its turn."""
        try:
            keys = [("address", client_address(request))]
            if body.session_hash:
                keys.append(("session", body.session_hash))
            refusal = self.refusal(dict(keys))
        except Exception:  # never let the fairness layer stop the queue
            log.exception("fair queueing skipped for one request")
            return await self._gradio_push(body=body, request=request, username=username)
        if refusal:
            return await self._refuse(body, refusal, keys[0][1])
        self._joining[id(body)] = keys
        try:
            success, event_id, state = await self._gradio_push(body=body, request=request, username=username)
        finally:
            del self._joining[id(body)]
        if success:
            try:
                self._joined[event_id] = time.monotonic()
                self._observe()
                self._take_turn(event_id)
            except Exception:
                log.exception("a job kept its place in the queue")
        return success, event_id, state

    def refusal(self, visitor: dict[str, str]) -> str | None:
        """The message refusing one more job for ``visitor`` ({"address": ..., "session": ...}), or None."""
        held = self.held()
        session = visitor.get("session")
        if session is not None and held[("session", session)] >= self.per_visitor:
            return (
                f"You already have {self.per_visitor} requests waiting or running; wait for them to finish, "
                "then try again."
            )
        if held[("address", visitor["address"])] >= self.per_address:
            return (
                f"Your network address already has {self.per_address} requests waiting or running (visitors behind "
                "one address share this limit); wait for them to finish, then try again."
            )
        return None

    def held(self) -> Counter:
        """Jobs waiting or running, and being added, per ("session", id) and per ("address", host)."""
        held = Counter()
        taken = set()  # the bodies of the events Gradio holds: a push in progress past that point counts once
        for event in list(self.queue.event_ids_to_events.values()):  # from push until its run ends
            held["session", event.session_hash] += 1
            held["address", client_address(event.request)] += 1
            taken.add(id(getattr(event, "data", None)))
        for body, keys in list(self._joining.items()):
            if body not in taken:
                held.update(keys)
        return held

    async def _refuse(self, body, message: str, address: str):
        """Answer the join with an event that has already failed with ``message``, as Gradio answers a cached one:
        gradio_client raises it and the browser shows it like any gr.Error. Past ``UNREAD_PER_ADDRESS`` refusals
        the address has not read (``UNREAD_TOTAL`` in all), a plain HTTP error (400) with ``message`` instead."""
        from gradio.server_messages import ProcessCompletedMessage
        from gradio.utils import error_payload

        self.refused += 1
        queue = self.queue
        event_id = uuid.uuid4().hex
        session = body.session_hash or event_id  # as gradio's Event names a session-less (/call) request
        async with queue.pending_message_lock:
            self._forget_unread()
            unread = sum(1 for _, held_by, _ in self._unread.values() if held_by == address)
            flooding = unread >= UNREAD_PER_ADDRESS or len(self._unread) >= UNREAD_TOTAL
            if not flooding:
                self._enqueue_refusal(event_id, session, address)
        if flooding:
            log.info("refused a job in the HTTP answer (%s unread refusals): %s", unread, message)
            await asyncio.sleep(REFUSAL_PAUSE)
            return False, message, "error"
        payload = error_payload(gr.Error(message, title=TITLE, print_exception=False), True)
        queue.pending_messages_per_session[session].put_nowait(
            ProcessCompletedMessage(output=payload, title=TITLE, success=False, event_id=event_id)
        )
        log.info("refused a job: %s", message)
        return True, event_id, "success"

    def _enqueue_refusal(self, event_id: str, session: str, address: str) -> None:
        """Make room for a refusal event in Gradio's per-session tables. Under the queue's pending_message_lock."""
        queue = self.queue
        if session not in queue.pending_messages_per_session:
            queue.pending_messages_per_session[session] = asyncio.Queue()
        queue.pending_event_ids_session.setdefault(session, set()).add(event_id)
        self._unread[event_id] = (time.monotonic(), address, session)

    def _forget_unread(self) -> None:
        """Stop tracking the refusals read since (Gradio's stream drops a read event's id) and drop those unread
        for ``UNREAD_KEPT`` seconds; a session left with nothing pending loses its entries in Gradio's tables too
        (Gradio keeps them until the session ends, and a session-less call's never does). Under the queue's
        pending_message_lock."""
        queue, stale = self.queue, time.monotonic() - UNREAD_KEPT
        for event_id, (since, _, session) in list(self._unread.items()):
            ids = queue.pending_event_ids_session.get(session)
            if ids is not None and event_id in ids and since > stale:
                continue
            del self._unread[event_id]
            if ids is not None:
                ids.discard(event_id)
                if not ids:
                    queue.pending_event_ids_session.pop(session, None)
                    queue.pending_messages_per_session.pop(session, None)

    def get_events(self):
        """Gradio's choice of the next job(s) to start, among the waiting jobs whose address still has a slot free
        in its lane (``lane_share``) and, on a busy server, no model job running; the others keep their places."""
        try:
            parked = self._park()
        except Exception:
            log.exception("every waiting job may start")
            parked = {}
        try:
            return self._gradio_get_events()
        finally:
            for lane, (waiting, eligible) in parked.items():  # the jobs not started, back in their order
                left = lane.queue
                lane.queue = [event for event in waiting if event in left or event not in eligible]

    def _park(self) -> dict:
        """{lane: (its waiting jobs, those that may start)} for each lane where some may not; those lanes show
        Gradio only the jobs that may start."""
        running = Counter(
            (event.concurrency_id, client_address(event.request))
            for job in self.queue.active_jobs
            if job
            for event in job
        )
        lanes = self.queue.event_queue_per_concurrency_id
        modelling = Counter()  # address -> its model jobs running
        for (lane_id, address), count in running.items():
            if lane_id in MODEL_LANES:
                modelling[address] += count
        waiting = {client_address(e.request) for lane in MODEL_LANES if lane in lanes for e in lanes[lane].queue}
        busy = len(set(modelling) | waiting) > 1
        steady = self._observe()
        others = set(modelling) | waiting  # the addresses a steady one waits for: those with model jobs
        now = time.monotonic()
        self._ran = {a: t for a, t in self._ran.items() if now - t < STEADY_PATIENCE} | dict.fromkeys(modelling, now)

        def waited(event) -> float:
            """Seconds since the job joined or its address last ran a model job, whichever was later."""
            return now - max(self._joined.get(event._id, now), self._ran.get(client_address(event.request), 0.0))

        def may_start(lane, event) -> bool:
            address = client_address(event.request)
            if busy and lane.concurrency_id in MODEL_LANES:
                if modelling[address]:
                    return False
                if address in steady and others - steady and waited(event) < STEADY_PATIENCE:
                    return False
            share = lane_share(lane.concurrency_limit)
            return share is None or running[lane.concurrency_id, address] < share

        parked = {}
        for lane in lanes.values():
            if not lane.queue:
                continue
            eligible = [event for event in lane.queue if may_start(lane, event)]
            if len(eligible) < len(lane.queue):
                parked[lane] = (lane.queue, eligible)
                lane.queue = list(eligible)
        return parked

    def in_background(self, address: str) -> bool:
        """Whether ``address`` is steady while an address that is not holds jobs (the module's ``in_background``)."""
        steady = self.occupancy.steady()
        if address not in steady:
            return False
        return any(key not in steady for kind, key in self.held() if kind == "address")

    def _observe(self) -> set[str]:
        """Tell the occupancy who holds jobs now (forgetting the jobs that ended); the steady addresses."""
        events = self.queue.event_ids_to_events
        for event_id in [e for e in self._joined if e not in events]:
            del self._joined[event_id]
        self.occupancy.observe({client_address(event.request) for event in list(events.values())})
        return self.occupancy.steady()

    def _take_turn(self, event_id: str) -> None:
        """Move the job just queued ahead of the waiting jobs of addresses that have more in its lane than it does.

        A job's rank is how many jobs of its address run or wait ahead of it in the lane; the new job goes before the
        first waiting job of a higher rank, so addresses take turns and each address's own jobs keep their order.
        """
        queue = self.queue
        event = queue.event_ids_to_events.get(event_id)
        lane = event and queue.event_queue_per_concurrency_id.get(event.concurrency_id)
        if lane is None or not lane.queue or lane.queue[-1] is not event:  # already running, or served from a cache
            return
        ahead = Counter(
            client_address(running.request)
            for job in queue.active_jobs
            if job
            for running in job
            if running.concurrency_id == event.concurrency_id
        )
        waiting = lane.queue[:-1]
        ranks = []
        for other in waiting:
            address = client_address(other.request)
            ranks.append(ahead[address])
            ahead[address] += 1
        mine = ahead[client_address(event.request)]
        place = next((i for i, rank in enumerate(ranks) if rank > mine), None)
        if place is not None:
            lane.queue.pop()
            lane.queue.insert(place, event)
