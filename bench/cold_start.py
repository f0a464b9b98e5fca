"""Cold start: from `python app.py --profile toy` to the first page served, with models loaded lazily.

python bench/cold_start.py          # best and median of 3 starts; goal: under 8 s
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import Row, app_environment  # noqa: E402

GOAL = 8.0  # seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(*flags: str) -> tuple[subprocess.Popen, str]:
    """`python app.py --profile toy FLAGS` on a free loopback port, offline: the process and its page's address."""
    port = free_port()
    env = {**app_environment(), "MM_PORT": str(port), "MM_HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "app.py", "--profile", "toy", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}/"


def wait_for_page(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as page:
                if page.status == 200 and b"<html" in page.read(4096).lower():
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"no page within {timeout} s (app exit code {process.poll()})")


def one_start(timeout: float = 120) -> float:
    start = time.perf_counter()
    process, url = start_app()
    try:
        wait_for_page(url, process, timeout)
        return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(30)


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    times = [one_start() for _ in range(args.repeats)]
    print(
        f"cold start (toy profile, lazy models): best {min(times):.2f} s, median {statistics.median(times):.2f} s "
        f"of {args.repeats} (goal < {GOAL:g} s)"
    )
    return [
        Row(
            "cold start: process start to first page (median)",
            statistics.median(times),
            None,
            "s",
            GOAL,
            higher_is_better=False,
        )
    ]


if __name__ == "__main__":
    main()
