"""A sweep of one notebook run N at a time against one after another; prints the wall times and their ratio.

    .venv/bin/python benchmarks/sweep.py [--notebook 02] [--parameter n_negatives 1 4] [--seeds 0-4]
                                         [--jobs 2] [--profile smoke] [--order parallel-first]

The target of issue 17: 10 runs (2 values x 5 seeds, smoke sizes) with ``--jobs 2`` take at most
0.65 x the time of the same runs one after another, on 2 cores. Both sweeps go through the same
code (``recnb.report.sweeps.start_sweep``: planning, worker start-up, every run's papermill
execution and HTML, the aggregate and index.html); only ``jobs`` differs. Speed is measured here,
never asserted by tests. Other work on the machine shifts both figures: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

from recnb.report.aggregate import load_sweep
from recnb.report.sweeps import default_jobs, parse_seeds, start_sweep


def timed_sweep(notebook: str, grid: dict[str, list[str]], seeds: str, jobs: int, profile: str, out: Path,
                name: str, html: bool) -> float:
    start = time.perf_counter()
    done = start_sweep([notebook], grid, seeds, jobs, profile=profile, out_dir=out, name=name, html=html,
                       progress=False, log=lambda line: None)
    seconds = time.perf_counter() - start
    runs = load_sweep(done.directory).runs
    bad = runs[runs["status"] != "ok"]
    if len(bad):
        raise SystemExit(f"{len(bad)} runs failed in {done.directory}: {list(bad['error'])}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="02", help="a course notebook: number, stem or path (default: %(default)s)")
    parser.add_argument("--parameter", nargs="+", default=["n_negatives", "1", "4"], metavar=("NAME", "VALUE"),
                        help="the swept parameter and its values (default: n_negatives 1 4)")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--no-html", action="store_true", help="skip the per-run HTML in both sweeps")
    parser.add_argument("--order", choices=["sequential-first", "parallel-first"], default="sequential-first")
    parser.add_argument("--out", type=Path, help="keep the two sweeps here (default: a temporary folder)")
    args = parser.parse_args()

    grid = {args.parameter[0]: [yaml.safe_load(v) for v in args.parameter[1:]]}
    out = args.out or Path(tempfile.mkdtemp(prefix="recnb-bench-sweep-"))
    n_runs = len(grid[args.parameter[0]]) * len(parse_seeds(args.seeds) or [None])
    print(f"notebook {args.notebook}, {args.parameter[0]} in {grid[args.parameter[0]]} x seeds {args.seeds} = {n_runs} runs, "
          f"profile {args.profile}; {default_jobs()} cores, load average {os.getloadavg()[0]:.2f} before")
    plans = [("sequential", 1), ("parallel", args.jobs)]
    if args.order == "parallel-first":
        plans.reverse()
    seconds = {}
    for label, jobs in plans:
        seconds[label] = timed_sweep(args.notebook, grid, args.seeds, jobs, args.profile, out, f"{label}-{jobs}", not args.no_html)
        print(f"{label:10} --jobs {jobs}: {seconds[label]:7.1f} s  ({seconds[label] / n_runs:.1f} s a run)"
              f"  load average after {os.getloadavg()[0]:.2f}")
    ratio = seconds["parallel"] / seconds["sequential"]
    print(f"ratio --jobs {args.jobs} / one after another: {ratio:.2f} (target <= 0.65)  sweeps in {out}")


if __name__ == "__main__":
    main()
