"""The report runner: execute notebooks with papermill and write a reproducible report.

For each notebook the runner checks the parameters, executes it in its own directory with the
project's kernel, renders HTML, and reads back the metrics it recorded. One failing notebook never
stops the others; the summary says which cell failed and why. Layout of a report::

    reports/<run name>/
        01_cosine_and_ranking.ipynb   executed notebook (with the error cell if it failed)
        01_cosine_and_ranking.html    its HTML rendering (offline: math by the MathJax in _static/)
        _static/mathjax/              the MathJax the HTML pages load, by a relative path
        index.html                    the run at a glance: failures first, then every notebook with
                                      status, duration, metrics and links; versions, commit, seed
        summary.json, summary.md      per notebook: status, duration, parameters, metrics, error;
                                      for the run: versions, git commit, seed, profile
        screenshots/                  with ``screenshots=True``: index.png and one chapter's PNG
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

from recnb.report.browser import BrowserUnavailable, check_page, chromium
from recnb.report.files import atomic_write, format_metric
from recnb.report.html import write_notebook_html
from recnb.report.index import report_index_html
from recnb.report.parameters import ParameterError, check_parameters, profile_parameters, load_profiles
from recnb.report.record import read_metrics

DEFAULT_KERNEL = "recnb"
REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


class ReportError(RuntimeError):
    """A problem that stops the whole run before any notebook executes (bad name, no kernel)."""


@dataclass
class NotebookResult:
    """What happened to one notebook of a run."""

    notebook: str
    status: str  # "ok", "failed" (raised while executing) or "rejected" (bad parameters; not run)
    duration_s: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    output: str | None = None
    html: str | None = None


@dataclass
class Report:
    """A whole run: where it is, how it was made, and each notebook's result."""

    directory: Path
    profile: str
    started: str
    environment: dict[str, Any]
    results: list[NotebookResult]

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.results)


def find_notebooks(names: list[str] | None = None, directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks to run: all of ``directory`` in course order, or those ``names`` pick.

    A name may be a path, a file name, a stem (``01_cosine_and_ranking``) or the course number
    (``01``). Unknown names raise :class:`ReportError` listing the notebooks there are.
    """
    available = sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith("."))
    if not names:
        if not available:
            raise ReportError(f"no notebooks found in {directory}: pass notebook paths, or run from the repository.")
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            chosen.append(path.resolve())
            continue
        matches = [p for p in available if name in (p.name, p.stem) or p.stem.split("_", 1)[0] == name]
        if len(matches) != 1:
            listing = ", ".join(p.stem for p in available) or "(none)"
            raise ReportError(
                f"no notebook matches {name!r}: give a path to an .ipynb file, or one of {listing} "
                f"(a stem or its number, e.g. 01)."
            )
        chosen.append(matches[0])
    return chosen


def check_kernel(kernel_name: str) -> None:
    """Raise :class:`ReportError` with what to do if ``kernel_name`` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise ReportError(
            f"the Jupyter kernel {kernel_name!r} is not installed (installed: {known}). Run `make report` "
            f"once, which registers it, or `{sys.executable} -m ipykernel install --sys-prefix --name "
            f"{kernel_name}`; or choose an installed kernel with --kernel NAME."
        ) from None


def environment() -> dict[str, Any]:
    """Versions and provenance recorded with every report."""

    def ver(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    env: dict[str, Any] = {
        "recnb": ver("recnb"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{name: ver(name) for name in ("torch", "pytorch-lightning", "transformers", "pandas", "numpy", "papermill")},
    }
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode == 0:
            env["git_commit"] = commit.stdout.strip()
            env["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def _error_of(exc: BaseException) -> dict[str, Any]:
    """The failing cell and the exception, as the summary shows them."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"cell": exc.exec_count, "cell_index": exc.cell_index, "ename": exc.ename, "evalue": exc.evalue}
    return {"cell": None, "cell_index": None, "ename": type(exc).__name__, "evalue": str(exc)}


def execute(
    notebook: Path,
    output: Path,
    parameters: dict[str, Any],
    kernel_name: str = DEFAULT_KERNEL,
    cell_progress: bool = False,
) -> None:
    """Run ``notebook`` with papermill into ``output``, in the notebook's own directory."""
    import papermill
    from traitlets.config import Config

    config = Config()
    sockets = None
    if os.name == "posix":  # local sockets: no TCP ports, and no "running over TCP" warning per kernel
        # in a folder of this run's own: jupyter_client's default socket names ("kernel-ipc-1"...,
        # relative to the working directory) collide when two runs start kernels at once
        sockets = tempfile.mkdtemp(prefix="recnb-kernel-")
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = os.path.join(sockets, "kernel")
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(notebook.parent),
            progress_bar=cell_progress,
            config=config,
        )
    finally:
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)


def run_report(
    notebooks: list[Path],
    parameters: dict[str, dict[str, Any]] | None = None,
    raw: dict[str, str] | None = None,
    profile: str = "default",
    out_dir: Path | str = "reports",
    name: str | None = None,
    kernel_name: str = DEFAULT_KERNEL,
    html: bool = True,
    cell_progress: bool = False,
    screenshots: bool = False,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Report:
    """Execute ``notebooks`` and write the report; returns the :class:`Report`.

    ``parameters`` maps a notebook stem to overrides given by the user (they win over the
    profile's); ``raw`` keeps their command-line text for str parameters. Every notebook is
    checked before any runs; a rejected or failing one never stops the others. With
    ``screenshots``, Chromium photographs the index and the first chapter that rendered into
    ``screenshots/`` (skipped with a message if Chromium or Playwright is missing).
    """
    check_kernel(kernel_name)
    profiles = load_profiles()
    started = dt.datetime.now()
    run_name = name or f"{profile}-{started:%Y%m%d-%H%M%S}"
    directory = Path(out_dir) / run_name
    directory.mkdir(parents=True, exist_ok=True)
    parameters = parameters or {}

    planned: list[tuple[Path, NotebookResult]] = []
    for nb in notebooks:
        given = {**profile_parameters(profile, nb.stem, profiles), **parameters.get(nb.stem, {})}
        result = NotebookResult(notebook=nb.name, status="pending", parameters=given)
        try:
            result.parameters = check_parameters(nb, given, raw)
        except ParameterError as exc:
            result.status, result.error = "rejected", {"cell": None, "ename": "ParameterError", "evalue": str(exc)}
            log(f"rejected {nb.name}: {exc}")
        planned.append((nb, result))

    report = Report(directory, profile, started.isoformat(timespec="seconds"), environment(), [r for _, r in planned])
    to_run = [(nb, r) for nb, r in planned if r.status == "pending"]
    t0 = time.perf_counter()
    for i, (nb, result) in enumerate(to_run, start=1):
        log(f"[{i}/{len(to_run)}] {nb.name} ... ({len(to_run) - i} left after this, {time.perf_counter() - t0:.0f}s elapsed)")
        output = directory / nb.name
        start = time.perf_counter()
        try:
            execute(nb, output, result.parameters, kernel_name, cell_progress)
            result.status = "ok"
        except Exception as exc:  # any failure is reported, and the batch goes on
            result.status, result.error = "failed", _error_of(exc)
        result.duration_s = round(time.perf_counter() - start, 2)
        if output.exists():
            result.output = output.name
            result.metrics = read_metrics(output)
            if html:
                try:
                    write_notebook_html(output, output.with_suffix(".html"), resources_dir=nb.parent)
                    result.html = output.with_suffix(".html").name
                except Exception as exc:  # a rendering problem must not hide the result
                    log(f"    could not render HTML for {nb.name}: {exc}")
        where = f" (cell {result.error['cell']}: {result.error['ename']}: {result.error['evalue']})" if result.error else ""
        log(f"    {result.status.upper()} in {result.duration_s:.1f}s{where}")
        write_summary(report)
    write_summary(report)
    if screenshots:
        take_screenshots(report, log)
    return report


def take_screenshots(report: Report, log: Callable[[str], None]) -> list[Path]:
    """PNGs of the run's ``index.html`` and of its first rendered chapter, in ``screenshots/``.

    Each page is opened offline in the system Chromium; what a reader would see wrong there (a
    request to the network, a console error, an image or link that fails, raw TeX) is logged.
    """
    pages = [report.directory / "index.html"]
    pages += [report.directory / r.html for r in report.results if r.html and r.status == "ok"][:1]
    written = []
    try:
        with chromium() as browser:
            for page in pages:
                png = report.directory / "screenshots" / f"{page.stem}.png"
                check = check_page(browser, page, screenshot=png)
                written.append(png)
                log(f"screenshot {png}" + "".join(f"\n    {p}" for p in check.problems))
    except BrowserUnavailable as exc:
        log(f"no screenshots: {exc}")
    return written


def write_summary(report: Report) -> None:
    """Write ``summary.json``, ``summary.md`` and ``index.html`` of ``report``, each atomically."""
    seeds = sorted({json.dumps(r.parameters.get("seed")) for r in report.results if "seed" in r.parameters})
    data = {
        "profile": report.profile,
        "started": report.started,
        "seed": json.loads(seeds[0]) if len(seeds) == 1 else ("notebook defaults" if not seeds else seeds),
        "environment": report.environment,
        "ok": report.ok,
        "notebooks": [asdict(r) for r in report.results],
    }
    atomic_write(report.directory / "summary.json", json.dumps(data, indent=2, default=str) + "\n")
    atomic_write(report.directory / "summary.md", summary_markdown(data))
    atomic_write(report.directory / "index.html", report_index_html(data, report.directory))


def summary_markdown(data: dict[str, Any]) -> str:
    """A human-readable summary: one section per notebook with its metrics."""
    env = data["environment"]
    lines = [
        f"# recnb report — profile `{data['profile']}`",
        "",
        f"Started {data['started']} · seed {data['seed']} · "
        + " · ".join(f"{k} {v}" for k, v in env.items() if k not in ("platform", "git_dirty") and v),
        "",
        "| notebook | status | seconds | metrics |",
        "|---|---|---|---|",
    ]
    for r in data["notebooks"]:
        lines.append(f"| {r['notebook']} | {r['status']} | {r['duration_s']:.1f} | {len(r['metrics'])} |")
    for r in data["notebooks"]:
        lines += ["", f"## {r['notebook']} — {r['status']}", ""]
        if r["parameters"]:
            lines.append("Parameters: " + ", ".join(f"`{k}={v!r}`" for k, v in r["parameters"].items()))
            lines.append("")
        if r["error"]:
            cell = f"cell {r['error']['cell']}: " if r["error"].get("cell") is not None else ""
            lines += [f"**Error** ({cell}{r['error']['ename']}): {r['error']['evalue']}", ""]
        if r["metrics"]:
            lines += ["| metric | value |", "|---|---|"]
            lines += [f"| {k} | {format_metric(v)} |" for k, v in r["metrics"].items()]
    return "\n".join(lines) + "\n"
