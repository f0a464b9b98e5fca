"""Fair queueing: one visitor (or one address) cannot fill the queue, its excess is refused with a message that
says what to do, and another visitor's request is served meanwhile, ahead of the first one's backlog.

Most tests use a tiny app whose one event waits on a gate the test opens, so what is queued when is certain; the last
drives the real app (toy profile) with its worst allowed request, held at its end by a gate the same way.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
import wave
from concurrent.futures import as_completed
from types import SimpleNamespace

import gradio as gr
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status
from PIL import Image

import demos.caption
from demos import fairness
from pipelines.core import limits
from tests.conftest import ROOT
from tests.serving import free_port, serve

SPEECH = ROOT / "assets/examples/speech/what_color_is_the_shape.wav"
RED_CIRCLE = ROOT / "assets/examples/toy/red_circle.png"
WAIT = 60  # seconds any one wait in these tests gives up after (a failure, never a measurement)


class GatedApp:
    """A served app with one event, /work(label), that records its label and waits until the gate opens."""

    def __init__(self, *, per_visitor: int, per_address: int, slots: int = 1, lane: str | None = None):
        self.gate, self.started, self.released = threading.Event(), [], set()
        self.background: dict[str, bool] = {}  # label -> whether its work ran in the background (turns)

        def work(label: str) -> str:
            self.started.append(label)
            self.background[label] = fairness.in_background()
            until(lambda: self.gate.is_set() or label in self.released, f"{label} may end")
            return f"done {label}"

        with gr.Blocks() as self.demo:
            label, result = gr.Textbox(), gr.Textbox()
            button = gr.Button("Work")  # "multiple": a person's every click is sent, as an API client's every call is
            button.click(
                work,
                label,
                result,
                api_name="work",
                concurrency_limit=slots,
                concurrency_id=lane,
                trigger_mode="multiple",
            )
        self.demo.queue(max_size=64)
        self.fair = fairness.install(self.demo, per_visitor=per_visitor, per_address=per_address)
        self.demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
        self.url = self.demo.local_url

    def client(self, address: str | None = None) -> Client:
        """A new visitor (its own session), seen at ``address`` as a proxy on loopback would report it."""
        headers = {"X-Forwarded-For": address} if address else None
        return Client(self.url, headers=headers, verbose=False)

    def held(self, kind: str, key: str) -> int:
        return self.fair.held()[kind, key]

    def close(self) -> None:
        self.gate.set()
        self.demo.close()


@pytest.fixture
def gated(request):
    caps = getattr(request, "param", {"per_visitor": 2, "per_address": 5})
    served = GatedApp(**caps)
    yield served
    served.close()


def until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        time.sleep(0.02)


def test_a_visitors_excess_is_refused_with_what_to_do_and_another_visitor_is_served(gated):
    flooder, other = gated.client(), gated.client()
    first = flooder.submit("f1", api_name="/work")
    until(lambda: gated.started == ["f1"], "the first job runs")
    second = flooder.submit("f2", api_name="/work")
    until(lambda: gated.held("session", flooder.session_hash) == 2, "the second job waits")
    for label in ("f3", "f4"):
        with pytest.raises(Exception, match="You already have 2 requests waiting or running.*then try again"):
            flooder.predict(label, api_name="/work")
    served = other.submit("o1", api_name="/work")
    until(lambda: gated.held("session", other.session_hash) == 1, "the other visitor's job is taken")
    gated.gate.set()
    assert [job.result(WAIT) for job in (first, second, served)] == ["done f1", "done f2", "done o1"]
    assert "f3" not in gated.started and "f4" not in gated.started and gated.fair.refused == 2
    assert flooder.predict("f5", api_name="/work") == "done f5"  # once its jobs are done, the visitor is welcome


@pytest.mark.browser
def test_a_refused_job_shows_its_message_in_the_browser(gated):
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_FLAGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(gated.url)
            button = page.get_by_role("button", name="Work")
            for held in (1, 2):
                button.click()
                until(lambda: gated.held("address", "127.0.0.1") == held, f"{held} of the page's jobs are held")
            button.click()
            page.get_by_text("You already have 2 requests waiting or running").first.wait_for(timeout=WAIT * 1000)
        finally:
            gated.gate.set()
            browser.close()


MODEL_LANE = {"per_visitor": 5, "per_address": 5, "slots": 3, "lane": fairness.GPU}  # two slots per address


@pytest.mark.parametrize("gated", [MODEL_LANE], indirect=True)
def test_a_lone_visitor_may_run_two_model_jobs_at_once(gated):
    alone = gated.client("203.0.113.7")
    jobs = [alone.submit("a1", api_name="/work")]
    until(lambda: gated.started == ["a1"], "the first job runs")
    jobs.append(alone.submit("a2", api_name="/work"))
    until(lambda: gated.started == ["a1", "a2"], "the lone visitor's second job runs")
    gated.gate.set()
    assert [job.result(WAIT) for job in jobs] == ["done a1", "done a2"]


@pytest.mark.parametrize("gated", [MODEL_LANE], indirect=True)
def test_on_a_busy_server_an_address_runs_one_model_job_at_a_time(gated):
    first, other = gated.client("203.0.113.7"), gated.client("198.51.100.9")
    jobs = [first.submit("a1", api_name="/work")]
    until(lambda: gated.started == ["a1"], "the first job runs")
    jobs.append(other.submit("b1", api_name="/work"))
    until(lambda: gated.started == ["a1", "b1"], "another visitor's job runs")
    jobs.append(first.submit("a2", api_name="/work"))
    until(lambda: gated.held("address", "203.0.113.7") == 2, "the first visitor's second job waits")
    time.sleep(0.5)  # a slot is free and the address's share allows two, yet it does not start beside the other's
    assert gated.started == ["a1", "b1"]
    gated.gate.set()
    assert [job.result(WAIT) for job in jobs] == ["done a1", "done b1", "done a2"]


def test_occupancy_tells_an_address_that_never_pauses_from_one_that_reads_its_results():
    now = [0.0]
    occupancy = fairness.Occupancy(half_life=10, clock=lambda: now[0])
    for second in range(60):  # the script always holds a job; the person holds one for 2 s of every 4
        now[0] = second
        occupancy.observe({"script"} | ({"person"} if second % 4 < 2 else set()))
    assert occupancy.steady() == {"script"}
    assert 0.3 < occupancy.share["person"] < 0.7
    for second in range(60, 200):  # both gone: the script's share fades and then its entry goes
        now[0] = second
        occupancy.observe(set())
    assert occupancy.steady() == set() and occupancy.share == {}
    occupancy.observe({"reader"})  # one short job, then nothing joins or waits for 45 s: the queue does not look
    now[0] = 245
    occupancy.observe({"someone else"})
    assert occupancy.steady() == set()  # the 45 s the queue did not look are not all counted as held


@pytest.mark.parametrize("gated", [MODEL_LANE], indirect=True)
def test_on_a_busy_server_an_address_that_never_pauses_waits_for_others_and_runs_in_the_background(gated, monkeypatch):
    steady, person = gated.client("203.0.113.7"), gated.client("198.51.100.9")
    now = [0.0]  # the occupancy's clock, which the test moves
    gated.fair.occupancy = fairness.Occupancy(clock=lambda: now[0])
    jobs = [steady.submit("s1", api_name="/work")]
    until(lambda: gated.started == ["s1"], "the first job runs")
    jobs.append(steady.submit("s2", api_name="/work"))
    until(lambda: gated.started == ["s1", "s2"], "the lone address runs two jobs")
    for second in range(1, 121):  # two minutes of holding jobs, as the queue sees it while jobs wait
        now[0] = float(second)
        gated.fair.occupancy.observe({"203.0.113.7"})
    # the clock stops here, so the person's share stays 0
    assert not gated.fair.in_background("203.0.113.7")  # steady, but alone: nobody to let pass
    jobs.append(person.submit("p1", api_name="/work"))
    until(lambda: gated.started == ["s1", "s2", "p1"], "the person's job runs")
    assert gated.fair.occupancy.steady() == {"203.0.113.7"} and gated.fair.in_background("203.0.113.7")
    jobs.append(steady.submit("s3", api_name="/work"))
    gated.released |= {"s1", "s2"}
    until(lambda: gated.held("address", "203.0.113.7") == 1, "the steady address's first jobs end")
    time.sleep(0.5)  # a slot is free and the address runs nothing, yet it waits while the person's job runs
    assert gated.started == ["s1", "s2", "p1"]
    monkeypatch.setattr(fairness, "STEADY_PATIENCE", 0.5)
    until(lambda: "s3" in gated.started, "the steady address's job starts once it has waited long enough")
    assert gated.held("address", "198.51.100.9") == 1  # beside the person's job, still running
    gated.gate.set()
    assert [job.result(WAIT) for job in jobs] == ["done s1", "done s2", "done p1", "done s3"]
    # and its work lets others' pass (turns): only once the address was seen never pausing
    assert gated.background == {"s1": False, "s2": False, "p1": False, "s3": True}


@pytest.mark.parametrize("gated", [{"per_visitor": 5, "per_address": 2}], indirect=True)
def test_an_address_is_capped_across_its_sessions_and_a_forged_header_does_not_escape_the_cap(gated):
    first, second, elsewhere = gated.client("203.0.113.7"), gated.client("203.0.113.7"), gated.client("198.51.100.9")
    jobs = [first.submit("a1", api_name="/work")]
    until(lambda: gated.started == ["a1"], "the first job runs")
    jobs.append(second.submit("a2", api_name="/work"))
    until(lambda: gated.held("address", "203.0.113.7") == 2, "the second session's job waits")
    with pytest.raises(Exception, match="Your network address already has 2 requests"):
        gated.client("203.0.113.7").predict("a3", api_name="/work")  # a fresh session does not help
    jobs.append(elsewhere.submit("b1", api_name="/work"))
    until(lambda: gated.held("address", "198.51.100.9") == 1, "another address is taken")

    # A visitor that is not a trusted proxy (not loopback) cannot pick its address by sending the header itself.
    direct = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), base_url=gated.url, timeout=WAIT)
    answers = []
    for forged in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        joined = direct.post("gradio_api/call/work", json={"data": [forged]}, headers={"X-Forwarded-For": forged})
        answers.append(joined.json()["event_id"])
    until(lambda: gated.held("address", "127.0.0.2") == 2, "two of the direct visitor's jobs wait")
    refused = direct.get(f"gradio_api/call/work/{answers[-1]}").text
    assert "event: error" in refused and "Your network address already has 2 requests" in refused
    assert not any(gated.held("address", forged) for forged in ("192.0.2.1", "192.0.2.2", "192.0.2.3"))
    gated.gate.set()
    assert [job.result(WAIT) for job in jobs] == ["done a1", "done a2", "done b1"]


@pytest.mark.parametrize("gated", [{"per_visitor": 1, "per_address": 1}], indirect=True)
def test_refusals_nobody_reads_become_http_errors_and_do_not_grow_the_servers_tables(gated, monkeypatch):
    monkeypatch.setattr(fairness, "REFUSAL_PAUSE", 0.01)  # each HTTP refusal is held this long (2 s in the app)
    flooder = httpx.Client(base_url=gated.url, headers={"X-Forwarded-For": "203.0.113.50"}, timeout=WAIT)
    reader = httpx.Client(base_url=gated.url, headers={"X-Forwarded-For": "203.0.113.51"}, timeout=WAIT)
    flooder.post("gradio_api/call/work", json={"data": ["x0"]})
    until(lambda: gated.started == ["x0"], "the flooder's job runs")
    reader.post("gradio_api/call/work", json={"data": ["r0"]})
    until(lambda: gated.held("address", "203.0.113.51") == 1, "the reader's job waits")
    tables = gated.demo._queue.pending_event_ids_session
    before = len(tables)

    answers = [flooder.post("gradio_api/call/work", json={"data": [f"x{i}"]}) for i in range(1, 41)]
    as_http = [answer for answer in answers if answer.status_code == 400]
    assert len(as_http) == 40 - fairness.UNREAD_PER_ADDRESS
    assert all("Your network address already has 1 requests" in answer.json()["detail"] for answer in as_http)
    assert len(tables) - before <= fairness.UNREAD_PER_ADDRESS  # not one entry per refused post

    for i in range(2 * fairness.UNREAD_PER_ADDRESS):  # a client that reads its refusals always gets them as events
        event_id = reader.post("gradio_api/call/work", json={"data": [f"r{i + 1}"]}).json()["event_id"]
        answer = reader.get(f"gradio_api/call/work/{event_id}").text
        assert "event: error" in answer and "Your network address already has 1 requests" in answer
    assert gated.started == ["x0"]


def test_a_job_being_added_counts_once_when_gradio_already_holds_it():
    """Gradio registers a job before its push returns (e.g. while it answers from a cache): counted once, the
    visitor's second job is still welcome."""

    async def scenario():
        events, answered = {}, asyncio.Event()

        async def gradios_push(body, request, username):
            events["e1"] = SimpleNamespace(
                session_hash=body.session_hash, request=request, data=body, concurrency_id="x"
            )
            await answered.wait()
            return True, "e1", "success"

        queue = SimpleNamespace(
            push=gradios_push, get_events=lambda: None, event_ids_to_events=events, event_queue_per_concurrency_id={}
        )
        fair = fairness.FairQueue(queue, per_visitor=2, per_address=5)
        visitor = SimpleNamespace(client=SimpleNamespace(host="203.0.113.9"))
        pushing = asyncio.create_task(fair.push(SimpleNamespace(session_hash="s"), visitor, None))
        while "e1" not in events:
            await asyncio.sleep(0)
        held, refusal = fair.held()["session", "s"], fair.refusal({"address": "203.0.113.9", "session": "s"})
        answered.set()
        await pushing
        return held, refusal

    held, refusal = asyncio.run(scenario())
    assert held == 1 and refusal is None


@pytest.mark.parametrize("gated", [{"per_visitor": 5, "per_address": 5}], indirect=True)
def test_a_newcomer_goes_ahead_of_another_visitors_backlog_and_each_keeps_its_own_order(gated):
    heavy, light, third = gated.client("203.0.113.1"), gated.client("203.0.113.2"), gated.client("203.0.113.3")
    heavy.submit("A1", api_name="/work")
    until(lambda: gated.started == ["A1"], "A's first job runs")
    for label in ("A2", "A3", "A4"):
        heavy.submit(label, api_name="/work")
        until(lambda: gated.held("session", heavy.session_hash) == int(label[1]), f"{label} waits")
    light.submit("B1", api_name="/work")
    until(lambda: gated.held("session", light.session_hash) == 1, "B1 waits")
    light.submit("B2", api_name="/work")
    until(lambda: gated.held("session", light.session_hash) == 2, "B2 waits")
    last = third.submit("C1", api_name="/work")
    until(lambda: gated.held("session", third.session_hash) == 1, "C1 waits")
    gated.gate.set()
    last.result(WAIT)
    until(lambda: len(gated.started) == 7, "every job ran")
    # Turns by address: each visitor's next job in turn, not A's whole backlog first; A's own jobs in its order.
    assert gated.started == ["A1", "B1", "C1", "A2", "B2", "A3", "A4"]


@pytest.mark.parametrize("gated", [{"per_visitor": 5, "per_address": 5, "slots": 2}], indirect=True)
def test_one_address_leaves_a_lanes_last_slot_to_others_so_a_newcomer_starts_beside_its_long_job(gated):
    heavy, light = gated.client("203.0.113.1"), gated.client("203.0.113.2")
    heavy.submit("A1", api_name="/work")
    until(lambda: gated.started == ["A1"], "A's first job runs")
    heavy.submit("A2", api_name="/work")
    until(lambda: gated.held("address", "203.0.113.1") == 2, "A's second job is taken")
    done = light.submit("B1", api_name="/work")
    until(lambda: "B1" in gated.started, "B's job starts")
    assert gated.started == ["A1", "B1"]  # A1 still runs (the gate is shut); A2 waits for A's own slot
    gated.gate.set()
    assert done.result(WAIT) == "done B1"
    until(lambda: "A2" in gated.started, "A's second job runs once its first is done")


def test_the_guard_passes_on_this_gradio_and_notices_what_a_new_one_lacks(monkeypatch, caplog):
    with gr.Blocks() as demo:
        gr.Button().click(lambda: None, api_name="nothing")
    demo.queue(max_size=7)
    assert fairness.missing_internals(demo._queue) == []
    assert isinstance(fairness.install(demo), fairness.FairQueue)

    with gr.Blocks() as changed:
        gr.Button().click(lambda: None, api_name="nothing")
    changed.queue(max_size=7)
    gradios_push = changed._queue.push
    del changed._queue.event_ids_to_events  # as if a new gradio kept its events elsewhere
    with caplog.at_level(logging.WARNING, logger="demos.fairness"):
        assert fairness.install(changed) is None
    assert "Fair queueing is off" in caplog.text and "event_ids_to_events" in caplog.text and "(7)" in caplog.text
    assert changed._queue.push == gradios_push  # Gradio's own queue, bounded by its max_size, serves on

    with gr.Blocks() as small:
        gr.Button().click(lambda: None, api_name="nothing")
    small.queue(max_size=3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="demos.fairness"):
        fairness.install(small, per_visitor=2, per_address=3)
    assert "one client can fill it for everyone" in caplog.text  # the caps must bite before the queue is full

    from gradio import queueing

    plain_init = queueing.Event.__init__

    def without_request(self, session_hash, fn, request, username):
        plain_init(self, session_hash, fn, request, username)
        del self.request

    monkeypatch.setattr(queueing.Event, "__init__", without_request)
    assert "Event.request" in fairness.missing_internals(demo._queue)


def test_on_a_space_visitors_are_told_apart_by_the_proxys_header_and_an_operators_setting_wins():
    assert fairness.space_proxies({}) is None  # elsewhere: uvicorn's default, loopback proxies only
    assert "10.0.0.0/8" in fairness.space_proxies({"SPACE_ID": "someone/demo"})
    assert fairness.space_proxies({"SPACE_ID": "someone/demo", "FORWARDED_ALLOW_IPS": "10.1.2.3"}) is None


def own(data: np.ndarray, at: int = -1) -> np.ndarray:
    """``data`` with one random byte: an upload whose content (hence Gradio's cache path) is this run's own, which
    another process on the machine closing its app cannot delete from the shared cache."""
    data = data.copy()
    data.flat[at] = secrets.randbelow(256)
    return data


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> dict:
    """This run's own copies of a toy image and a recording, and the worst caption batch allowed: the most images per
    request, each larger than the app's largest side (decoded in full, then scaled down); smooth, for a small upload.
    """
    folder = tmp_path_factory.mktemp("uploads")
    Image.fromarray(own(np.asarray(Image.open(RED_CIRCLE).convert("RGB")))).save(folder / "red_circle.png")
    with wave.open(str(SPEECH)) as source, wave.open(str(folder / "speech.wav"), "wb") as copy:
        copy.setparams(source.getparams())
        frames = np.frombuffer(source.readframes(source.getnframes()), np.uint8)
        copy.writeframes(own(frames, at=-source.getsampwidth()).tobytes())  # the last sample's lowest byte
    side = 2 * limits.limits().image_side
    y, x = np.mgrid[0:side, 0:side]
    pixels = np.stack([x * 255 // (side - 1), y * 255 // (side - 1), (x + y) * 255 // (2 * side - 2)], -1)
    Image.fromarray(own(pixels.astype(np.uint8))).save(folder / "large.png")
    return {
        "image": handle_file(str(folder / "red_circle.png")),
        "speech": handle_file(str(folder / "speech.wav")),
        "worst": [handle_file(str(folder / "large.png"))] * limits.limits().images_per_request,
    }


@pytest.mark.slow
def test_a_small_request_is_served_while_another_visitors_worst_request_runs_and_a_flood_is_cut(uploads, monkeypatch):
    finish = threading.Event()  # the worst request does all its work, then holds its slot until the test is done
    captioned = demos.caption.caption_and_rerank

    def held_until_the_test_lets_go(captioner, images, *args, **kwargs):
        ranked = captioned(captioner, images, *args, **kwargs)
        if len(images) > 1:  # the batch's steps (the other visitor's single caption is not held)
            finish.wait(10 * WAIT)
        return ranked

    monkeypatch.setattr(demos.caption, "caption_and_rerank", held_until_the_test_lets_go)
    demo = serve("toy")
    try:
        heavy = Client(demo.local_url, headers={"X-Forwarded-For": "203.0.113.10"}, verbose=False)
        light = Client(demo.local_url, headers={"X-Forwarded-For": "198.51.100.20"}, verbose=False)
        light.predict(uploads["image"], api_name="/caption")  # models loaded: no one waits for that
        light.predict(uploads["speech"], api_name="/transcribe")

        worst = heavy.submit(uploads["worst"], api_name="/caption_batch")
        until(lambda: worst.status().code in (Status.PROCESSING, Status.PROGRESS), "the worst request runs")
        flood = [heavy.submit(uploads["speech"], api_name="/transcribe") for _ in range(6)]
        caption = light.submit(uploads["image"], api_name="/caption")
        transcript = light.submit(uploads["speech"], api_name="/transcribe")

        # Another lane's small request, and one in the same lane: it runs beside the worst request, before the first
        # visitor's backlog, which waits for that visitor's own slot.
        assert caption.result(10 * WAIT)[0] == "a red circle"
        assert "color" in transcript.result(10 * WAIT)[0].lower()
        assert not worst.done()
        finish.set()
        jobs = {job.future: job for job in [worst, *flood]}  # a Job wraps its future
        finished = [jobs[future] for future in as_completed(jobs, timeout=10 * WAIT)]
        refused = [job for job in flood if job.exception() is not None]
        queued = [job for job in flood if job.exception() is None]
        assert len(refused) == 3 and len(queued) == 3  # the worst request and 3 more: the visitor's 4
        for job in refused:
            assert "You already have 4 requests waiting or running" in str(job.exception())
        assert all("color" in job.result()[0].lower() for job in queued)
        served = [job for job in finished if job not in refused]
        assert served.index(worst) < min(served.index(job) for job in queued)
    finally:
        finish.set()
        demo.close()
