"""Turns: long work gives way, between its steps, to the requests that came after it (pipelines.core.turns)."""

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


def test_background_work_lets_every_other_request_pass_and_nobody_waits_for_it():
    order, other_started, other_may_end = [], threading.Event(), threading.Event()
    background_started = threading.Event()

    def other_request():  # older than the background one, in the foreground
        with turns.request():
            other_started.set()
            other_may_end.wait(WAIT)
            turns.give_way()  # the background request is newer, yet this one does not wait for it
            order.append("other: done")

    def background_request():
        with turns.request(background=True):  # waits here, before its first step, for the other one
            background_started.set()
            order.append("background: step 1")

    other = in_thread(other_request)
    other_started.wait(WAIT)
    background = in_thread(background_request)
    background.join(0.5)
    assert background.is_alive() and not background_started.is_set(), "background work started beside a request"
    other_may_end.set()
    for thread in (other, background):
        thread.join(WAIT)
    assert order == ["other: done", "background: step 1"]


def test_work_done_together_acts_for_the_request_that_goes_first(monkeypatch):
    monkeypatch.setattr(turns, "LONGEST_WAIT", 3600.0)
    older, newer_background = turns.begin(), turns.begin(background=True)
    passed = threading.Event()

    def batch():  # a chat batch of both rows must not give way to one of its own rows
        with turns.acting_for(turns.first([older, newer_background])):
            turns.give_way()
        passed.set()

    try:
        assert turns.first([older, newer_background]) == older and turns.first([]) is None
        in_thread(batch)
        assert passed.wait(WAIT), "work done for two requests waited for one of them"
    finally:
        turns.end(older)
        turns.end(newer_background)
