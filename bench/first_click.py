"""First click vs warm click: how long a visitor's first caption takes on a fresh server, with and without the
background warm-up (`python app.py` warms the profile's models once the page is served; `--no-warmup` loads each on
first use), against a warm click measured on the same server.

python bench/first_click.py          # toy profile, median of 3 fresh servers per mode; report only (no goal)

Each server: start `python app.py --profile toy [--no-warmup]`, wait for the page, and (with warm-up) for the
System panel to report every profile model ready, as a visitor who opens the page and looks before clicking; then
time one /caption (the first click) and then 5 more (warm clicks, median). The ratio is first / warm per server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.cold_start import start_app, wait_for_page  # noqa: E402
from bench.report import Row  # noqa: E402

SCENE = ROOT / "assets/examples/toy/red_circle.png"
WARM_CLICKS = 5


def _wait_until_ready(client, timeout: float = 300) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        report = client.predict(api_name="/system")
        profile = report.split("**Profile models**")[1].split("**Loaded models**")[0]
        if all(line.endswith(": ready") for line in profile.strip().splitlines()):
            return
        time.sleep(0.5)
    raise SystemExit("the warm-up did not finish in time")


def one_server(warmup: bool) -> tuple[float, float]:
    """(first click, median warm click) in seconds on a fresh server."""
    from gradio_client import Client, handle_file

    process, url = start_app(*([] if warmup else ["--no-warmup"]))
    try:
        wait_for_page(url, process)
        client = Client(url, verbose=False)
        if warmup:
            _wait_until_ready(client)
        clicks = []
        for _ in range(1 + WARM_CLICKS):
            start = time.perf_counter()
            client.predict(handle_file(str(SCENE)), api_name="/caption")
            clicks.append(time.perf_counter() - start)
        return clicks[0], statistics.median(clicks[1:])
    finally:
        process.terminate()
        process.wait(30)


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for warmup in (False, True):
        runs = [one_server(warmup) for _ in range(args.repeats)]
        first = statistics.median(run[0] for run in runs)
        warm = statistics.median(run[1] for run in runs)
        ratio = statistics.median(run[0] / run[1] for run in runs)
        mode = "with warm-up" if warmup else "--no-warmup"
        print(f"{mode}: first click {first:.2f} s, warm click {warm:.3f} s, first / warm {ratio:.1f}x (medians)")
        rows.append(
            Row(f"first caption click, {mode} (median)", first, warm, "s", None, higher_is_better=False, ratio=ratio)
        )
    return rows


if __name__ == "__main__":
    main()
