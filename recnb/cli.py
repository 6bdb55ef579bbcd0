"""The ``recnb`` command: run notebooks as papermill reports or sweeps, compare runs, refresh committed notebooks, build the site."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from recnb.report.compare import compare, format_table, regressions
from recnb.report.parameters import ParameterError, load_profiles, profiles_path, split_parameter_file
from recnb.report.refresh import refresh
from recnb.report.runner import DEFAULT_KERNEL, NOTEBOOKS_DIR, ReportError, check_kernel, find_notebooks, run_report
from recnb.report.site import build_site
from recnb.report.sweeps import default_jobs, read_grid_file, resume_sweep, start_sweep

REPORT_HELP = """\
Execute notebooks with papermill and write a report under OUT/NAME/: each executed notebook,
its HTML rendering (math rendered offline by a MathJax copied into OUT/NAME/_static/), index.html
(open it in a browser: failures first, then every notebook with status, duration, metrics and
links), and summary.json + summary.md (per notebook: status, duration, parameters, recorded
metrics, error; for the run: versions, git commit, seed).

Parameters are checked against each notebook's `parameters` cell before anything runs: an unknown
name or a value of the wrong type rejects that notebook with a message listing what it declares.
A failing notebook never stops the others; the exit status is 1 if any notebook was rejected or
failed, 2 if nothing could run (bad notebook name, profile, parameter file or kernel).

examples:
  recnb report                                  # every notebook, the notebooks' own defaults
  recnb report --profile smoke                  # tiny sizes: every notebook in seconds
  recnb report 02 -p max_epochs 5 -p seed 1     # one notebook (by number, stem or path)
  recnb report 04 06 -f params.yaml --out /tmp/reports --name alpha-sweep
"""

SITE_HELP = """\
Build a static site of the committed notebooks from their stored outputs (nothing is executed):
OUT/index.html lists the chapters in course order; each chapter page has its math rendered offline
(MathJax copied into OUT/_static/), its figures and code, links to the previous and next chapters,
and its .ipynb to download. Open OUT/index.html from disk, or serve the folder:
python -m http.server -d OUT

examples:
  recnb site                       # every notebook into ./site
  recnb site 00 01 --out /tmp/s    # two chapters only
"""

SWEEP_HELP = """\
Run notebooks over a grid of parameter values times seeds: every combination is one papermill
execution in its own kernel, JOBS at a time. Every value is checked against the notebooks'
`parameters` cells before anything starts (an unknown name or a wrong type: a message naming the
notebook and what it declares, and nothing runs). The seeds go to the notebook's `seed` parameter.

Writes OUT/NAME/: sweep.json (the plan), runs/<run id>/ (notebook.ipynb, notebook.html, run.json
with parameters, status, duration, metrics and the error; run.json is written last), results.csv
(one row per run x metric, every parameter a column), aggregate.csv (per setting and metric: n
seeds, mean, std, min, max, 95 % bootstrap interval of the mean over seeds) and index.html
(failures first, a plot per metric with interval bands, the aggregate, links to every run).

A failing run never stops the others; the exit status is 1 if any run failed, 2 if nothing could
start, 130 after Ctrl-C. Ctrl-C or a killed process loses only the runs in flight: --resume runs
what has no run.json and never touches a finished run.

examples:
  recnb sweep 06 -p shrinkage 0 10 100 --seeds 0-9 --profile smoke
  recnb sweep 02 -p n_negatives 1 4 -p max_epochs 5 10 --seeds 0-4 --jobs 2 --name negatives
  recnb sweep 04 -f grid.yaml      # grid: {neighbours: [10, 50]}, parameters: {mf_dim: 16}, seeds: 0-4
  recnb sweep --resume reports/negatives
"""

COMPARE_HELP = """\
Compare two reports (a folder with summary.json, or the file) or sweeps (a folder with sweep.json):
every recorded metric side by side, matched by notebook, setting and name, with B - A. Where both
sides ran several seeds: a 95 % bootstrap interval of the difference (paired by seed when both ran
the same seeds) and whether it excludes 0 ("beyond seeds": larger than seed-to-seed noise).
Metrics on one side only are listed. The exit status is 1 when a metric moved beyond --tolerance,
a non-numeric value changed, or a metric of A is missing from B; new metrics in B are listed only.

examples:
  recnb compare reports/before reports/after
  recnb compare reports/sweep-old reports/sweep-new --tolerance 0.005
  recnb compare reports/stored/summary.json reports/smoke-20260101-120000 --tolerance 1%
"""

PROFILES_NOTE = "profiles (in {path}): {names}"


def _parse_value(text: str) -> Any:
    """A command-line value read as YAML: 3 -> int, 0.5 -> float, true -> bool, [1, 2] -> list."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recnb", description="recnb: notebooks on the mathematics of recommendation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    try:
        names = ", ".join(sorted(load_profiles()))
    except (OSError, yaml.YAMLError):
        names = "(profiles file unreadable)"
    report = sub.add_parser(
        "report",
        help="run notebooks as papermill reports",
        description=REPORT_HELP,
        epilog=PROFILES_NOTE.format(path=profiles_path(), names=names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "notebooks", nargs="*", metavar="NOTEBOOK",
        help=f"notebooks to run: paths, stems or course numbers (default: all in {NOTEBOOKS_DIR}, in order)",
    )
    report.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="set a parameter in every chosen notebook; VALUE is read as YAML (3, 0.5, true, text)",
    )
    report.add_argument(
        "-f", "--parameters-file", type=Path, metavar="FILE",
        help="YAML file of parameters: flat (for every chosen notebook) or keyed by notebook stem / '*'",
    )
    report.add_argument("--profile", default="default", help="named set of overrides from the profiles file (default: %(default)s)")
    report.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="folder the run's folder goes in (default: %(default)s)")
    report.add_argument("--name", help="the run's folder name (default: PROFILE-YYYYmmdd-HHMMSS)")
    report.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel to execute with (default: %(default)s)")
    report.add_argument("--no-html", action="store_true", help="skip the HTML renderings")
    report.add_argument("--cell-progress", action="store_true", help="show papermill's per-cell progress bar too")
    report.add_argument(
        "--screenshots", action="store_true",
        help="after the run, photograph index.html and the first chapter in headless Chromium into "
        "OUT/NAME/screenshots/ (needs /usr/bin/chromium: `make browser`)",
    )

    site = sub.add_parser(
        "site", help="build the static course site from the committed notebooks",
        description=SITE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    site.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="paths, stems or numbers (default: all, in course order)")
    site.add_argument("--out", type=Path, default=Path("site"), metavar="DIR", help="the site's folder (default: %(default)s)")

    sweep = sub.add_parser(
        "sweep", help="run notebooks over a grid of parameters x seeds, in parallel, and aggregate",
        description=SWEEP_HELP, epilog=PROFILES_NOTE.format(path=profiles_path(), names=names),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="paths, stems or course numbers (give them before -p)")
    sweep.add_argument(
        "-p", "--parameter", nargs="+", action="append", default=[], metavar=("NAME", "VALUE"),
        help="a parameter and the values to sweep (each read as YAML); one value fixes it",
    )
    sweep.add_argument("-f", "--grid-file", type=Path, metavar="FILE",
                       help="YAML: grid: {NAME: [VALUES]}, parameters: {NAME: VALUE}, seeds: 0-9 (or flat NAME: [VALUES])")
    sweep.add_argument("--seeds", nargs="+", metavar="SEEDS",
                       help="seeds for the notebook's `seed` parameter: 0-9, 0,3,7 (default: the profile's or notebook's)")
    sweep.add_argument("--jobs", "-j", type=int, metavar="N", help=f"runs at a time (default: the number of cores, {default_jobs()})")
    sweep.add_argument("--profile", default="default", help="named set of fixed overrides from the profiles file (default: %(default)s)")
    sweep.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="folder the sweep's folder goes in (default: %(default)s)")
    sweep.add_argument("--name", help="the sweep's folder name (default: sweep-YYYYmmdd-HHMMSS)")
    sweep.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel to execute with (default: %(default)s)")
    sweep.add_argument("--no-html", action="store_true", help="skip each run's HTML rendering")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run instead)")
    sweep.add_argument("--resume", type=Path, metavar="SWEEP",
                       help="finish the sweep in this folder: run only what has no run.json (takes --jobs, --retry-failed)")
    sweep.add_argument("--retry-failed", action="store_true", help="with --resume: also re-run the runs that failed")

    comp = sub.add_parser(
        "compare", help="compare the metrics of two reports or sweeps",
        description=COMPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    comp.add_argument("a", type=Path, metavar="A", help="the reference: a report or sweep folder, or a summary.json")
    comp.add_argument("b", type=Path, metavar="B", help="the one to check against A")
    comp.add_argument("--tolerance", "-t", default="0", metavar="T",
                      help="largest |B - A| that is not a move: a number (0.01) or a percentage of A (2%%); default 0")
    comp.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV")

    refresh = sub.add_parser(
        "refresh",
        help="re-execute committed notebooks in place with their defaults",
        description="Re-execute notebooks in place with their defaults, keeping outputs and execution counts "
        "and stripping papermill's per-run metadata. A notebook that fails is left unchanged.",
    )
    refresh.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="paths, stems or numbers (default: all)")
    refresh.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel (default: %(default)s)")
    return parser


def _report(args: argparse.Namespace) -> int:
    notebooks = find_notebooks(args.notebooks)
    stems = [nb.stem for nb in notebooks]
    per_notebook: dict[str, dict[str, Any]] = {stem: {} for stem in stems}
    if args.parameters_file:
        try:
            data = yaml.safe_load(args.parameters_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ReportError(f"cannot read the parameters file {args.parameters_file}: {exc}") from None
        if not isinstance(data, dict):
            raise ReportError(f"{args.parameters_file} must hold a YAML mapping of NAME: VALUE, got {type(data).__name__}")
        per_notebook = split_parameter_file(data, stems)
    raw = {name: text for name, text in args.parameter}
    for stem in stems:
        per_notebook[stem].update({name: _parse_value(text) for name, text in args.parameter})
    report = run_report(
        notebooks, per_notebook, raw, profile=args.profile, out_dir=args.out, name=args.name,
        kernel_name=args.kernel, html=not args.no_html, cell_progress=args.cell_progress,
        screenshots=args.screenshots,
    )
    bad = [r for r in report.results if r.status != "ok"]
    print(f"report: {report.directory / 'summary.md'}")
    if bad:
        print(f"{len(bad)} of {len(report.results)} notebooks did not finish: "
              + ", ".join(f"{r.notebook} ({r.status})" for r in bad), file=sys.stderr)
        return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    progress = False if args.no_progress else None
    if args.jobs is not None and args.jobs < 1:
        raise ReportError(f"--jobs must be at least 1, got {args.jobs}")
    if args.resume is not None:
        given = [flag for flag, value in (("NOTEBOOK", args.notebooks), ("-p", args.parameter), ("-f", args.grid_file),
                                          ("--seeds", args.seeds), ("--name", args.name)) if value]
        if given:
            raise ReportError(f"--resume reads the plan from {args.resume}/sweep.json: drop {', '.join(given)}")
        done = resume_sweep(args.resume, args.jobs, retry_failed=args.retry_failed, progress=progress)
    else:
        if args.retry_failed:
            raise ReportError("--retry-failed goes with --resume SWEEP")
        if not args.notebooks:
            raise ReportError("name the notebook(s) to sweep, e.g. `recnb sweep 06 -p shrinkage 0 10 --seeds 0-4`")
        grid, fixed, seeds = read_grid_file(args.grid_file) if args.grid_file else ({}, {}, None)
        raw: dict[str, list[str | None]] = {name: [None] * len(values) for name, values in grid.items()}
        for words in args.parameter:
            if len(words) < 2:
                raise ReportError(f"-p {words[0]} needs at least one value: -p NAME VALUE [VALUE...]")
            name, texts = words[0], words[1:]
            grid[name] = [_parse_value(t) for t in texts]
            raw[name] = list(texts)
            fixed.pop(name, None)
        done = start_sweep(
            args.notebooks, grid, args.seeds if args.seeds else seeds, args.jobs, parameters=fixed, raw=raw,
            profile=args.profile, out_dir=args.out, name=args.name, kernel_name=args.kernel, html=not args.no_html,
            progress=progress,
        )
    print(f"sweep: {done.directory / 'index.html'}")
    if done.interrupted:
        return 130
    bad = {k: v for k, v in done.statuses.items() if v != "ok"}
    if bad:
        print(f"{len(bad)} of {len(done.statuses)} runs did not finish ok: " + ", ".join(f"{k} ({v})" for k, v in bad.items()),
              file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    table = compare(args.a, args.b, args.tolerance)
    print(f"A = {args.a}\nB = {args.b}\ntolerance {args.tolerance}\n")
    print(format_table(table))
    if args.csv:
        table.to_csv(args.csv, index=False)
    counts = table["status"].value_counts()
    print("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()))
    bad = regressions(table)
    if len(bad):
        print(f"{len(bad)} metric(s) moved beyond the tolerance, changed, or are missing from B", file=sys.stderr)
        return 1
    return 0


def _refresh(args: argparse.Namespace) -> int:
    check_kernel(args.kernel)
    failed = []
    for nb in find_notebooks(args.notebooks):
        start = time.perf_counter()
        try:
            refresh(nb, args.kernel)
            print(f"refreshed {nb.name} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        except Exception as exc:  # report every notebook, then fail
            failed.append(nb.name)
            print(f"FAILED {nb.name} (left unchanged): {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _site(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    index = build_site(args.out, find_notebooks(args.notebooks) if args.notebooks else None,
                       log=lambda line: print(line, file=sys.stderr))
    print(f"site: {index} ({time.perf_counter() - start:.1f}s); open it, or `python -m http.server -d {args.out}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"report": _report, "refresh": _refresh, "site": _site, "sweep": _sweep, "compare": _compare}
    try:
        return commands[args.command](args)
    except (ReportError, ParameterError) as exc:
        print(f"recnb {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recnb {args.command}: interrupted", file=sys.stderr)
        return 130
