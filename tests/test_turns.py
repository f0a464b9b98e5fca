"""Turns: long work gives way, between its steps, to the requests that came after it (pipelines.core.turns)."""

import random
import threading

from pipelines.core import turns
from pipelines.core.budget import Deadline

WAIT = 30  # seconds a test waits for a thread before it fails (never reached when the code is right)


def in_thread(work) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_long_work_waits_between_steps_until_a_newer_request_ends():
    order, long_started, newer_started, newer_may_end = [], threading.Event(), threading.Event(), threading.Event()

    def long_work():
        with turns.request():
            long_started.set()
            order.append("long: step 1")
            newer_started.wait(WAIT)
            turns.give_way()
            order.append("long: step 2")

    def newer_request():
        with turns.request():
            newer_started.set()
            newer_may_end.wait(WAIT)
            order.append("newer: done")

    long = in_thread(long_work)
    long_started.wait(WAIT)  # the long work holds the older ticket
    newer = in_thread(newer_request)
    newer_started.wait(WAIT)
    long.join(0.5)
    assert long.is_alive(), "the long work went on while a newer request was in progress"
    newer_may_end.set()
    for thread in (newer, long):
        thread.join(WAIT)
    assert order == ["long: step 1", "newer: done", "long: step 2"]


def test_a_newer_request_does_not_wait_for_an_older_one():
    older_started, older_may_end, passed = threading.Event(), threading.Event(), threading.Event()

    def older():
        with turns.request():
            older_started.set()
            older_may_end.wait(WAIT)

    def newer():
        with turns.request():
            turns.give_way()
            passed.set()

    first = in_thread(older)
    older_started.wait(WAIT)
    in_thread(newer)
    assert passed.wait(WAIT), "a newer request waited for an older one"
    older_may_end.set()
    first.join(WAIT)


def test_the_wait_ends_at_the_deadline(monkeypatch):
    monkeypatch.setattr(turns, "LONGEST_WAIT", 3600.0)  # only the deadline can end this wait
    long_started, newer_started, newer_may_end, stopped = threading.Event(), threading.Event(), threading.Event(), []

    def long_work():
        with turns.request():
            long_started.set()
            newer_started.wait(WAIT)
            deadline = Deadline(0.2)
            stopped.append(deadline.stop_before_next_step())

    def newer_request():
        with turns.request():
            newer_started.set()
            newer_may_end.wait(WAIT)

    long = in_thread(long_work)
    long_started.wait(WAIT)
    newer = in_thread(newer_request)
    long.join(WAIT)
    assert not long.is_alive(), "the wait for a turn went on past the request's deadline"
    assert stopped == [True], "a request waiting for its turn ran past its deadline or did not say it is over"
    newer_may_end.set()
    newer.join(WAIT)


def test_work_outside_a_request_never_waits():
    started, may_end = threading.Event(), threading.Event()

    def request():
        with turns.request():
            started.set()
            may_end.wait(WAIT)

    newer = in_thread(request)
    started.wait(WAIT)
    assert turns.give_way() == 0.0
    may_end.set()
    newer.join(WAIT)


def test_a_visitors_second_request_waits_at_its_start_for_another_visitors_first():
    order, first_running, other_running, other_may_end = [], threading.Event(), threading.Event(), threading.Event()
    first_may_end, second_done = threading.Event(), threading.Event()

    def first_of_a():
        with turns.request("visitor A"):
            first_running.set()
            first_may_end.wait(WAIT)

    def first_of_b():
        with turns.request("visitor B"):
            other_running.set()
            other_may_end.wait(WAIT)
            order.append("B's first")

    def second_of_a():
        with turns.request("visitor A"):
            turns.give_way(starting=True)
            order.append("A's second")
            second_done.set()

    threads = [in_thread(first_of_a)]
    first_running.wait(WAIT)
    threads.append(in_thread(first_of_b))
    other_running.wait(WAIT)
    threads.append(in_thread(second_of_a))
    assert not second_done.wait(0.5), "a visitor's second request started while another visitor's first one ran"
    other_may_end.set()
    assert second_done.wait(WAIT)
    first_may_end.set()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["B's first", "A's second"]


def test_requests_of_one_visitor_do_not_wait_for_each_other_at_their_start():
    started, may_end, passed = threading.Event(), threading.Event(), threading.Event()

    def first():
        with turns.request("visitor A"):
            started.set()
            may_end.wait(WAIT)

    def second():
        with turns.request("visitor A"):
            turns.give_way(starting=True)
            passed.set()

    thread = in_thread(first)
    started.wait(WAIT)
    in_thread(second)
    assert passed.wait(WAIT), "one visitor's second request waited for its first at its start"
    may_end.set()
    thread.join(WAIT)


def test_some_request_always_goes_on():
    """Whatever mix of visitors and waits, never may every request in progress wait for another (a deadlock would
    stall everyone until the longest wait ran out)."""
    rng = random.Random(20)
    for _ in range(500):
        tickets = [turns.begin(rng.choice(["A", "B", "C", None])) for _ in range(rng.randint(1, 7))]
        try:
            starting = {ticket: rng.random() < 0.5 for ticket in tickets}
            with turns._changed:
                assert not all(turns._outranked(ticket, starting[ticket]) for ticket in tickets)
        finally:
            for ticket in tickets:
                turns.end(ticket)
