"""Load and soak: many concurrent gradio_client users against the app (toy profile) on loopback.

    python bench/load.py                       # 16 clients x 50 mixed requests, then 8 concurrent vs 8 sequential
    python bench/load.py --clients 4 --requests 10

Starts `python app.py --profile toy` in a child process on a free loopback port, warms every API up, then measures:
errors, p50/p95 latency per API, the server's resident memory after warm-up and at the end (growth goal <= 5 %),
and the wall time of 8 concurrent /caption calls over 8 sequential ones (goal <= 0.6x, from dynamic batching).
Bounded in count and time; talks to 127.0.0.1 only. Not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
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


def start_app(port: int) -> subprocess.Popen:
    env = {
        **app_environment(),
        "MM_PORT": str(port),
        "MM_HOST": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "app.py", "--profile", "toy", "--device", "cpu"],
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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    main()
