"""Load and soak: many concurrent gradio_client users against the app (toy profile) on loopback.

    python bench/load.py                       # 16 clients x 50 mixed requests, then 8 concurrent vs 8 sequential
    python bench/load.py --clients 4 --requests 10
    python bench/load.py --abuse --duration 120   # 8 ordinary visitors for 120 s alone, then 120 s with an abuser

Starts `python app.py --profile toy` in a child process on a free loopback port, warms every API up, then measures:
errors, p50/p95 latency per API, the server's resident memory after warm-up and at the end (growth goal <= 5 %),
and the wall time of 8 concurrent /caption calls over 8 sequential ones (goal <= 0.6x, from dynamic batching).

The abuse mix (--abuse) measures what one hostile visitor at the limits (pipelines/core/limits.py, MM_MAX_* as set
in this environment) costs everyone else: 8 ordinary visitors use the app for --duration seconds alone, then for as
long again while one visitor (one client address, several sessions; a process of its own) sends the largest
allowed batches of large images, the longest allowed audio, texts at the character limit, floods of jobs and gallery
uploads. It reports the ordinary visitors' p95 latency with the abuser over without (goal <= 2x), the server's
resident memory after the run over the warm baseline (goal <= 1.2x), the growth of the app's cache directory (goal
<= limits().store_bytes), and the CPU the server and the abuser's own client used.
Each visitor has its own address through X-Forwarded-For, as behind a proxy (loopback is a trusted one).
Bounded in count and time; talks to 127.0.0.1 only. Not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import Row, app_environment, ratio_row  # noqa: E402

TIMEOUT = 1800  # seconds: the whole run gives up after this
EXAMPLES = ROOT / "assets/examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, env: dict | None = None, flags: tuple = ()) -> subprocess.Popen:
    env = {
        **app_environment(),
        "MM_PORT": str(port),
        "MM_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "app.py", "--profile", "toy", "--device", "cpu", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the app did not start (exit code {process.poll()}) within 120 s")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far, all its threads (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_by_api():
    """api name -> a function(client) making one request with the main input only, as a remote user would."""
    from gradio_client import handle_file

    toy = sorted((EXAMPLES / "toy").glob("*.png"))
    photos = sorted((EXAMPLES / "photos").glob("*.jpg"))
    speech = EXAMPLES / "speech/what_color_is_the_shape.wav"
    queries = ["a red circle", "a blue triangle", "a cat", "a rocket", "a green square", "a cup of coffee"]
    return {
        "/caption": lambda c: c.predict(handle_file(str(random.choice(toy + photos))), api_name="/caption"),
        "/search": lambda c: c.predict(random.choice(queries), api_name="/search"),
        "/ask": lambda c: c.predict(handle_file(str(random.choice(toy))), api_name="/ask"),
        "/classify": lambda c: c.predict(handle_file(str(random.choice(toy))), api_name="/classify"),
        "/transcribe": lambda c: c.predict(handle_file(str(speech)), api_name="/transcribe"),
    }


def timed(call) -> tuple[float, str | None]:
    start = time.perf_counter()
    try:
        call()
        return time.perf_counter() - start, None
    except Exception as error:  # counted and reported: the run is about how many there are
        return time.perf_counter() - start, f"{type(error).__name__}: {error}"


def soak(url: str, clients: int, per_client: int, seed: int) -> dict[str, list]:
    from gradio_client import Client

    apis = requests_by_api()
    weights = {"/caption": 3, "/search": 4, "/ask": 3, "/classify": 2, "/transcribe": 1}

    def user(index: int) -> list[tuple[str, float, str | None]]:
        rng = random.Random(seed + index)
        client = Client(url, verbose=False)
        names = rng.choices(list(weights), weights=list(weights.values()), k=per_client)
        return [(name, *timed(lambda: apis[name](client))) for name in names]

    with ThreadPoolExecutor(clients) as pool:
        done = [row for rows in pool.map(user, range(clients)) for row in rows]
    results: dict[str, list] = {}
    for name, seconds, error in done:
        results.setdefault(name, []).append((seconds, error))
    return results


def concurrent_vs_sequential(url: str, n: int = 8) -> tuple[float, float]:
    from gradio_client import Client, handle_file

    images = sorted((EXAMPLES / "toy").glob("*.png"))[:n]
    clients = [Client(url, verbose=False) for _ in range(n)]

    def call(i):
        return clients[i].predict(handle_file(str(images[i])), api_name="/caption")

    start = time.perf_counter()
    for i in range(n):
        call(i)
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(call, range(n)))
    return time.perf_counter() - start, sequential


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--abuse", action="store_true", help="run the abuse mix instead (see the module docstring)")
    parser.add_argument("--duration", type=float, default=120, help="abuse mix: seconds of each phase")
    parser.add_argument("--visitors", type=int, default=8, help="abuse mix: ordinary visitors")
    parser.add_argument("--think", type=float, default=1.0, help="abuse mix: ordinary visitors' mean pause, seconds")
    parser.add_argument("--settle", type=float, default=10, help="abuse mix: idle seconds before memory is read")
    parser.add_argument("--public", action="store_true", help="abuse mix: serve the app in public mode")
    parser.add_argument(
        "--abuser-loops",
        default=",".join(Abuser.LOOPS),
        help="abuse mix: what the abuser does, some of " + ", ".join(Abuser.LOOPS) + " (all by default)",
    )
    parser.add_argument(
        "--abuser-nice",
        type=int,
        default=19,
        help="abuse mix: the abuser's client process runs at this niceness (default 19: it takes only the CPU the "
        "server and the visitors leave, as if it ran on another machine, as a real abuser's does; 0: it competes "
        "with the server for this machine's cores)",
    )
    args = parser.parse_args(argv)
    if args.abuse:
        return abuse_mix(args)

    port = free_port()
    app = start_app(port)
    url = f"http://127.0.0.1:{port}/"
    try:
        from gradio_client import Client

        warm = Client(url, verbose=False)
        for name, request in requests_by_api().items():  # load every model once
            seconds, error = timed(lambda: request(warm))
            if error:
                raise SystemExit(f"warm-up {name} failed: {error}")
        soak(url, args.clients, 5, seed=1)  # warm up at the run's concurrency: per-thread allocator pools settle
        before = rss_mib(app.pid)
        start = time.perf_counter()
        results = soak(url, args.clients, args.requests, seed=2)
        wall = time.perf_counter() - start
        after = rss_mib(app.pid)
        concurrent, sequential = concurrent_vs_sequential(url)
    finally:
        app.terminate()
        app.wait(30)

    errors = [error for rows in results.values() for _, error in rows if error]
    total = sum(len(rows) for rows in results.values())
    print(
        f"\n{args.clients} clients x {args.requests} requests = {total} in {wall:.0f} s, toy profile, CPU, "
        f"{os.cpu_count()} cores\n"
    )
    print(f"| {'API':<12} | {'requests':>8} | {'errors':>6} | {'p50 s':>6} | {'p95 s':>6} |")
    print(f"|{'-' * 14}|{'-' * 10}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    latency = {}
    for name, rows in sorted(results.items()):
        seconds = [s for s, error in rows if not error]
        failed = sum(1 for _, error in rows if error)
        latency[name] = (percentile(seconds, 0.5), percentile(seconds, 0.95)) if seconds else (None, None)
        p50, p95 = (float("nan") if p is None else p for p in latency[name])
        print(f"| {name:<12} | {len(rows):8d} | {failed:6d} | {p50:6.2f} | {p95:6.2f} |")
    growth = after / before - 1
    ratio = concurrent / sequential
    print(f"\nerrors: {len(errors)} of {total} (goal 0)" + (f"; first: {errors[0]}" if errors else ""))
    print(f"server memory after warm-up {before:.0f} MiB, after the run {after:.0f} MiB: {growth:+.1%} (goal <= +5%)")
    print(
        f"8 concurrent /caption calls {concurrent:.2f} s vs 8 sequential {sequential:.2f} s: {ratio:.2f}x "
        f"(goal <= 0.6x)"
    )
    rows = [
        Row(
            f"load: errors in {total} mixed requests from {args.clients} clients",
            len(errors),
            None,
            "",
            0,
            higher_is_better=False,
        ),
        Row(
            "load: server memory growth after warm-up",
            growth * 100,
            None,
            "%",
            5,
            higher_is_better=False,
            note=f"{before:.0f} -> {after:.0f} MiB",
        ),
        ratio_row(
            "load: 8 concurrent /caption / 8 sequential", concurrent, sequential, "s", 0.6, higher_is_better=False
        ),
    ]
    rows += [
        Row(f"load: {name} latency p50 / p95", p50, None, "s", None, note=f"p95 {p95:.2f} s")
        for name, (p50, p95) in sorted(latency.items())
        if p50 is not None
    ]
    return rows


# ------------------------------------------------------------------------------------------------- abuse mix

WEIGHTS = {"/caption": 3, "/search": 4, "/ask": 3, "/classify": 2, "/transcribe": 1}  # what ordinary visitors ask
ABUSER = "203.0.113.66"  # the abuser's one address (documentation range); ordinary visitors get 198.51.100.x
REFUSED = "requests waiting or running"  # in demos/fairness.py's refusals


def write_abuse_files(folder: Path, bounds) -> None:
    """Files at the limits: a large smooth image (decoded in full, scaled down; small to upload), the most
    recordings per request filling the audio allowance, distinct noise images for the gallery."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:5000, 0:8000]  # 40 MP, as in issue 18
    large = np.stack([x * 255 // 7999, y * 255 // 4999, (x + y) * 255 // 12998], -1).astype(np.uint8)
    Image.fromarray(large).save(folder / "large.png")
    del large, x, y
    with wave.open(str(EXAMPLES / "speech/what_color_is_the_shape.wav")) as source:
        params, speech = source.getparams(), source.readframes(source.getnframes())
    files = bounds.audio_files_per_request
    seconds = bounds.audio_seconds_per_request / files - 1  # together just under the allowance
    pause = b"\0" * (params.sampwidth * params.framerate // 2)
    repeats = int(seconds * params.framerate * params.sampwidth // (len(speech) + len(pause)))
    with wave.open(str(folder / "long.wav"), "wb") as long:
        long.setparams(params)
        long.writeframes((speech + pause) * repeats)
    rng = np.random.default_rng(18)
    for i in range(bounds.images_per_request):
        Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(folder / f"noise{i}.png")


def abuse_inputs(folder: Path, bounds) -> dict:
    """The abuser's inputs: the files ``write_abuse_files`` left in ``folder``, texts at the character limit."""
    from gradio_client import handle_file

    files = bounds.audio_files_per_request
    gallery = [str(folder / f"noise{i}.png") for i in range(bounds.images_per_request)]
    text = ("a red circle on a white background, " * (bounds.text_chars // 30 + 1))[: bounds.text_chars]
    from pipelines.search.classify import MAX_LABELS

    width = bounds.text_chars // MAX_LABELS - 2  # the most labels, together at the character limit
    labels = ", ".join(f"shape number {i} ".ljust(width, "x") for i in range(MAX_LABELS))[: bounds.text_chars]
    return {
        "large": lambda: handle_file(str(folder / "large.png")),
        "images": lambda: [handle_file(str(folder / "large.png"))] * bounds.images_per_request,
        "recordings": lambda: [handle_file(str(folder / "long.wav"))] * files,
        "long_audio": lambda: handle_file(str(folder / "long.wav")),
        "gallery": lambda: [handle_file(path) for path in gallery],
        "text": text[: bounds.text_chars - 1] + "?",
        "labels": labels,
        # a prompt is the template with a label in it: together at the limit
        "template": ("a photo of a {} " + "seen from far away " * bounds.text_chars)[: bounds.text_chars - width - 2],
    }


class Abuser:
    """One visitor at the limits, from one address: five loops at once until ``stop_at``, counting what happens."""

    def __init__(self, url: str, inputs: dict, bounds, stop_at: float):
        self.url, self.inputs, self.bounds, self.stop_at = url, inputs, bounds, stop_at
        self.lock = threading.Lock()
        self.sent = self.served = self.refused = 0
        self.errors: dict[str, int] = {}

    def client(self):
        from gradio_client import Client

        return Client(self.url, headers={"X-Forwarded-For": ABUSER}, verbose=False)

    LOOPS = ("heavy_images", "long_audio", "long_texts", "flood", "fill_disk")

    def run(self, names: tuple[str, ...] = LOOPS) -> None:
        loops = [getattr(self, name) for name in names]
        threads = [threading.Thread(target=self._loop, args=(loop,), daemon=True) for loop in loops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def tally(self) -> dict:
        return {"sent": self.sent, "served": self.served, "refused": self.refused, "errors": self.errors}

    def _loop(self, body) -> None:
        client = self.client()
        while time.monotonic() < self.stop_at:
            client = body(client) or client

    def _call(self, client, *args, api_name: str) -> None:
        with self.lock:
            self.sent += 1
        try:
            client.predict(*args, api_name=api_name)
        except Exception as error:  # a refusal or a limit's message: what is being measured
            self._count(error)
        else:
            with self.lock:
                self.served += 1

    def _count(self, error: Exception) -> None:
        with self.lock:
            if REFUSED in str(error):
                self.refused += 1
            else:
                key = f"{type(error).__name__}: {str(error)[:120]}"
                self.errors[key] = self.errors.get(key, 0) + 1

    def heavy_images(self, client):
        self._call(client, self.inputs["images"](), api_name="/caption_batch")

    def long_audio(self, client):
        self._call(client, self.inputs["recordings"](), api_name="/transcribe_files")
        self._call(client, self.inputs["long_audio"](), api_name="/transcribe")

    def long_texts(self, client):
        text, large = self.inputs["text"], self.inputs["large"]
        self._call(client, text, api_name="/search")
        self._call(client, large(), text, api_name="/ask")
        self._call(client, large(), self.inputs["labels"], self.inputs["template"], api_name="/classify")
        self._call(client, large(), text, api_name="/heatmap")
        self._call(client, large(), self.inputs["long_audio"](), text, api_name="/studio")

    def flood(self, client):
        """Twice the address's allowance of jobs at once, from a fresh session (a client's to make up)."""
        client = self.client()
        jobs = [
            client.submit(self.inputs["text"], api_name="/search") for _ in range(2 * self.bounds.queued_per_address)
        ]
        with self.lock:
            self.sent += len(jobs)
        for job in jobs:
            try:
                job.result()
            except Exception as error:
                self._count(error)
            else:
                with self.lock:
                    self.served += 1
        time.sleep(1)
        return client

    def fill_disk(self, client):
        """A gallery of distinct images per fresh session, as many as a request may carry, again and again."""
        client = self.client()
        self._call(client, self.inputs["gallery"](), api_name="/add_images")
        return client


def abuse(url: str, folder: Path, seconds: float, names: tuple[str, ...], nice: int, tallies) -> None:
    """The abuser's process: its loops for ``seconds``, then its tally onto ``tallies`` (a multiprocessing queue).
    A process of its own, as a real abuser is on another machine: its client's work (dozens of threads parsing
    streams) does not take the ordinary visitors' clients' interpreter lock, so what they measure is the server."""
    from pipelines.core.limits import limits

    os.nice(nice)
    bounds = limits()
    abuser = Abuser(url, abuse_inputs(folder, bounds), bounds, time.monotonic() + seconds)
    abuser.run(names)
    tallies.put({**abuser.tally(), "cpu_seconds": time.process_time()})


def ordinary_visitor(url: str, index: int, stop_at: float, think: float) -> list[tuple[str, float, str | None]]:
    """One ordinary visitor (its own session and address) until ``stop_at``: the soak's mix, a pause between."""
    from gradio_client import Client

    rng = random.Random(index)
    client = Client(url, headers={"X-Forwarded-For": f"198.51.100.{index + 1}"}, verbose=False)
    apis, rows = requests_by_api(), []
    while time.monotonic() < stop_at:
        name = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        rows.append((name, *timed(lambda: apis[name](client))))
        time.sleep(rng.uniform(0, 2 * think))
    return rows


def visitors_for(url: str, args, abuser_files: Path | None = None) -> tuple[list, dict | None]:
    """The ordinary visitors' (api, seconds, error) rows over one phase and, with ``abuser_files`` (the folder
    ``write_abuse_files`` filled), the tally of an abuser at work beside them in its own process."""
    stop_at = time.monotonic() + args.duration
    abuser = tallies = None
    if abuser_files is not None:
        spawn = multiprocessing.get_context("spawn")
        tallies = spawn.Queue()
        names = tuple(args.abuser_loops.split(","))
        setup = (url, abuser_files, args.duration, names, args.abuser_nice, tallies)
        abuser = spawn.Process(target=abuse, args=setup, daemon=True)
        abuser.start()
    with ThreadPoolExecutor(args.visitors) as pool:
        visits = [pool.submit(ordinary_visitor, url, i, stop_at, args.think) for i in range(args.visitors)]
        rows = [row for visit in visits for row in visit.result()]
    if abuser is None:
        return rows, None
    tally = tallies.get(timeout=TIMEOUT)  # its requests in flight finish first (the time budget bounds each)
    abuser.join()
    return rows, tally


def directory_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


class PeakMemory:
    """The largest resident memory of ``pid`` seen while running, sampled twice a second."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def abuse_mix(args) -> list[Row]:
    from gradio_client import Client

    from pipelines.core.limits import limits

    bounds = limits()  # the child app reads the same MM_MAX_* variables
    work = Path(tempfile.mkdtemp(prefix="mm-abuse-"))
    cache, uploads = work / "cache", work / "gradio"
    passed = {name: value for name, value in os.environ.items() if name.startswith(("MM_MAX_", "MM_UPLOAD_"))}
    env = {**passed, "MM_CACHE_DIR": str(cache), "GRADIO_TEMP_DIR": str(uploads)}
    write_abuse_files(work, bounds)
    port = free_port()
    app = start_app(port, env, ("--public",) if args.public else ())
    url = f"http://127.0.0.1:{port}/"
    try:
        warm = Client(url, verbose=False)
        for name, request in requests_by_api().items():  # load every model once
            seconds, error = timed(lambda: request(warm))
            if error:
                raise SystemExit(f"warm-up {name} failed: {error}")
        visitors_for(url, argparse.Namespace(**{**vars(args), "duration": min(20.0, args.duration)}))
        before, cache_before, uploads_before = rss_mib(app.pid), directory_bytes(cache), directory_bytes(uploads)
        cpu_start = cpu_seconds(app.pid)
        alone, _ = visitors_for(url, args)
        cpu_alone = cpu_seconds(app.pid) - cpu_start
        peak = PeakMemory(app.pid)
        start = time.perf_counter()
        beside, abuser = visitors_for(url, args, work)
        wall = time.perf_counter() - start
        cpu_beside = cpu_seconds(app.pid) - cpu_start - cpu_alone
        peak_mib = peak.stop()
        right_after = rss_mib(app.pid)
        time.sleep(args.settle)
        after = rss_mib(app.pid)
        cache_growth = directory_bytes(cache) - cache_before
        uploads_growth = directory_bytes(uploads) - uploads_before
    finally:
        app.terminate()
        app.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nabuse mix: {args.visitors} ordinary visitors for {args.duration:.0f} s alone, then {wall:.0f} s beside "
        f"one abuser; toy profile, CPU, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} now"
        + (", public mode" if args.public else "")
        + ("" if args.abuser_loops == ",".join(Abuser.LOOPS) else f"; the abuser's loops: {args.abuser_loops}")
        + f"; the abuser's client at nice {args.abuser_nice}"
    )
    print(
        f"limits: {bounds.images_per_request} images, {bounds.audio_files_per_request} recordings / "
        f"{bounds.audio_seconds_per_request:.0f} s of audio, {bounds.text_chars} characters per request; "
        f"{bounds.queued_per_visitor} jobs per visitor, {bounds.queued_per_address} per address; "
        f"{bounds.request_seconds:.0f} s per request\n"
    )
    print(
        f"| {'API':<12} | {'alone: n':>8} | {'err':>4} | {'p50 s':>6} | {'p95 s':>6} | {'beside: n':>9} | "
        f"{'err':>4} | {'p50 s':>6} | {'p95 s':>6} |"
    )
    print(f"|{'-' * 14}|{'-' * 10}|{'-' * 6}|{'-' * 8}|{'-' * 8}|{'-' * 11}|{'-' * 6}|{'-' * 8}|{'-' * 8}|")

    def stats(rows, name=None):
        picked = [(s, e) for api, s, e in rows if name in (None, api)]
        ok = [s for s, e in picked if not e]
        nan = float("nan")
        return len(picked), len(picked) - len(ok), *((percentile(ok, 0.5), percentile(ok, 0.95)) if ok else (nan, nan))

    for name in [*WEIGHTS, None]:
        a, b = stats(alone, name), stats(beside, name)
        print(
            f"| {name or 'all':<12} | {a[0]:8d} | {a[1]:4d} | {a[2]:6.2f} | {a[3]:6.2f} | {b[0]:9d} | {b[1]:4d} | "
            f"{b[2]:6.2f} | {b[3]:6.2f} |"
        )
    _, _, _, p95_alone = stats(alone)
    _, errors, _, p95_beside = stats(beside)
    first_error = next((e for _, _, e in beside if e), None)
    print(
        f"\nabuser: {abuser['sent']} requests sent, {abuser['served']} served, {abuser['refused']} refused as too "
        f"many waiting, {sum(abuser['errors'].values())} refused or failed otherwise"
    )
    for message, count in sorted(abuser["errors"].items(), key=lambda item: -item[1])[:6]:
        print(f"  {count:4d} x {message}")
    print(
        f"CPU: the server used {cpu_alone / args.duration:.2f} cores alone and {cpu_beside / wall:.2f} beside the "
        f"abuser, whose own client (on this machine too, unlike a real one) used {abuser['cpu_seconds'] / wall:.2f}"
    )
    p95_ratio, memory_ratio = p95_beside / p95_alone, after / before
    print(
        f"\nordinary visitors' p95: {p95_beside:.2f} s beside the abuser vs {p95_alone:.2f} s alone: "
        f"{p95_ratio:.2f}x (goal <= 2x); their errors beside it: {errors} (goal 0)"
        + (f"; first: {first_error}" if first_error else "")
    )
    print(
        f"server memory: warm baseline {before:.0f} MiB, peak {peak_mib:.0f} MiB, right after {right_after:.0f} MiB, "
        f"after {args.settle:.0f} s idle {after:.0f} MiB: {memory_ratio:.2f}x the baseline (goal <= 1.2x)"
    )
    quota = bounds.store_bytes / 2**20
    print(
        f"disk: the app's cache grew {cache_growth / 2**20:.0f} MiB (goal <= the store quota, {quota:.0f} MiB: "
        f"{cache_growth / bounds.store_bytes:.2f}x); Gradio's upload cache grew {uploads_growth / 2**20:.0f} MiB "
        "(its own hourly sweep removes files older than a day)"
    )
    return [
        ratio_row(
            "abuse: ordinary visitors' p95, beside an abuser / alone",
            p95_beside,
            p95_alone,
            "s",
            2,
            higher_is_better=False,
        ),
        Row("abuse: ordinary visitors' errors beside an abuser", errors, None, "", 0, higher_is_better=False),
        ratio_row(
            "abuse: server memory after / warm baseline",
            after,
            before,
            "MiB",
            1.2,
            higher_is_better=False,
            note=f"peak {peak_mib:.0f} MiB",
        ),
        Row("abuse: app cache growth", cache_growth / 2**20, None, "MiB", quota, higher_is_better=False),
    ]


if __name__ == "__main__":
    main()
