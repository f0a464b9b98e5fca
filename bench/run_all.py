"""Run every benchmark and write bench/REPORT.md (a table: metric, ours, reference, ratio, goal) and bench/report.svg.

    python bench/run_all.py            # all of them, one after another (tens of minutes on 2 CPU cores)
    python bench/run_all.py --only transcribe cold_start

Each benchmark's ``main(argv)`` prints its own detailed table and returns rows (bench/report.py). Numbers are what
this run on this machine measured; ratios compare contenders measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import Row, markdown, svg  # noqa: E402

# name -> (module, argv): what each issue asked to measure.
BENCHMARKS = {
    "caption": ("bench.bench_caption", []),
    "search": ("bench.bench_search", []),
    "ask": ("bench.bench_ask", []),
    "chat": ("bench.bench_chat", []),
    "transcribe": ("bench.bench_transcribe", ["--word-errors"]),
    "load": ("bench.load", []),
    "cold_start": ("bench.cold_start", []),
    "first_click": ("bench.first_click", []),
}


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at the start"
    )


def run_isolated(name: str) -> list[Row] | None:
    """Run one benchmark in a fresh process (its models and threads die with it); its rows, or None if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.json"
        done = subprocess.run([sys.executable, __file__, "--child", name, str(rows_file)], cwd=ROOT)
        if done.returncode or not rows_file.exists():
            return None
        return [Row(**{k: v for k, v in row.items() if k != "met"}) for row in json.loads(rows_file.read_text())]


def child(name: str, rows_file: Path) -> None:
    module, argv = BENCHMARKS[name]
    rows = importlib.import_module(module).main(argv)
    rows_file.write_text(json.dumps([row.as_dict() for row in rows]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run just these")
    parser.add_argument(
        "--out",
        type=Path,
        help="where REPORT.md and report.svg go (default: bench/, or "
        "bench/partial/ with --only, so a partial run never replaces the full report)",
    )
    parser.add_argument("--child", nargs=2, metavar=("NAME", "ROWS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], Path(args.child[1]))

    args.out = args.out or ROOT / "bench" / ("partial" if args.only else "")
    started, header = time.perf_counter(), machine()
    sections, rows, failures = [], [], []
    for name in args.only or BENCHMARKS:
        print(f"\n===== {name} ({BENCHMARKS[name][0]}) =====", flush=True)
        found = run_isolated(name)
        if found is None:  # one broken benchmark must not lose the others' numbers
            failures.append(f"- {name}: failed; its output above says why")
            continue
        rows += found
        sections.append(f"### {name}\n\n{markdown(found)}\n")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.svg").write_text(svg(rows, "How far each measured goal got (1 = goal met)"))
    report = [
        "# Performance report",
        "",
        f"Written by `python bench/run_all.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in "
        f"{(time.perf_counter() - started) / 60:.0f} min. Machine: {header}.",
        "Each number is what this one run measured; ratios compare contenders timed in the same run. "
        "Each benchmark's docstring says exactly what it runs.",
        "",
        "![goals](report.svg)",
        "",
        markdown(rows),
        "",
        *(["## Failed", *failures, ""] if failures else []),
        "## By benchmark",
        "",
        *sections,
    ]
    (args.out / "REPORT.md").write_text("\n".join(report))
    print(f"\nwrote {args.out / 'REPORT.md'} and {args.out / 'report.svg'}")


if __name__ == "__main__":
    main()
