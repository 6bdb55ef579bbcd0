"""The ``recnb`` command: run notebooks as papermill reports, refresh committed notebooks, build the site."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from recnb.report.refresh import refresh
from recnb.report.site import build_site
from recnb.report.parameters import ParameterError, load_profiles, profiles_path, split_parameter_file
from recnb.report.runner import DEFAULT_KERNEL, NOTEBOOKS_DIR, ReportError, check_kernel, find_notebooks, run_report

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
    commands = {"report": _report, "refresh": _refresh, "site": _site}
    try:
        return commands[args.command](args)
    except (ReportError, ParameterError) as exc:
        print(f"recnb {args.command}: {exc}", file=sys.stderr)
        return 2
