"""Research runs: one notebook (or several) over a grid of parameter values times seeds.

``recnb sweep`` and :func:`sweep` plan every combination, check every value against the notebooks'
``parameters`` cells before anything starts, then execute the runs with papermill, ``jobs`` at a
time, each in its own kernel. Layout of a sweep::

    reports/<sweep name>/
        sweep.json               the plan, written once at the start: notebooks (with their sha256),
                                 grid, seeds, profile, kernel, and every run's id and parameters
        runs/<run id>/
            notebook.ipynb       the executed notebook (with the error cell if it failed)
            notebook.html        its offline HTML (MathJax from ../../_static/mathjax)
            run.json             parameters, status, duration, recorded metrics, the error and the
                                 failing cell; written last, so its presence means "finished"
        results.csv              tidy: one row per run x metric, every parameter a column
        aggregate.csv            per notebook, setting and metric: seeds, mean, std, min, max and a
                                 95 % bootstrap interval of the mean over seeds
        index.html               failures first, a plot per metric against the swept parameter with
                                 interval bands, the aggregate table, every run with its links
        workers.log              the workers' stderr

Runs are executed by long-lived worker processes (``python -c ... _serve()``), one run at a time
each, every run a fresh papermill execution in a fresh kernel. A worker is its own process group
(``Ctrl-C`` in the terminal reaches only the runner, which then kills the workers) and dies with
the runner (Linux ``PR_SET_PDEATHSIG``); a kernel whose worker died shuts down within a second
(ipykernel's parent poller). So ``Ctrl-C``, a killed runner or a crashed kernel costs only the
runs in flight: their folders have no ``run.json``, and ``--resume`` runs exactly those. A run
id is a function of the notebook and its parameters, so a resumed plan finds its runs again.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import yaml

from recnb.report.aggregate import PLAN, RUN_JSON, RUNS, Sweep, load_sweep, read_plan, write_outputs
from recnb.report.files import atomic_write
from recnb.report.html import copy_mathjax, notebook_html, relative_url
from recnb.report.index import failing_cell
from recnb.report.parameters import ParameterError, check_parameters, declared_parameters, load_profiles, profile_parameters
from recnb.report.record import read_metrics
from recnb.report.runner import DEFAULT_KERNEL, ReportError, _error_of, check_kernel, environment, execute, find_notebooks

NOTEBOOK = "notebook.ipynb"
NOTEBOOK_HTML = "notebook.html"
_PARTIAL = ".partial.ipynb"
_PARENT_ENV = "RECNB_SWEEP_PARENT"
_GRID_FILE_KEYS = {"grid", "parameters", "seeds"}

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- plan


def parse_seeds(tokens: int | str | Iterable[int | str] | None) -> list[int] | None:
    """Seeds from ``0-9``, ``0,3,7``, ``0-4,10`` or several such tokens (ranges inclusive)."""
    if tokens is None:
        return None
    if isinstance(tokens, (int, str)):
        tokens = [tokens]
    seeds: list[int] = []
    for token in tokens:
        if isinstance(token, bool):
            raise ParameterError(f"seeds must be integers, got {token!r}")
        if isinstance(token, int):
            seeds.append(token)
            continue
        for part in str(token).replace(" ", "").split(","):
            if not part:
                continue
            match = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
            if not match:
                raise ParameterError(f"cannot read seeds {token!r}: write them as 0-9, 0,3,7 or 0-4,10")
            low, high = int(match.group(1)), int(match.group(2) or match.group(1))
            if high < low:
                raise ParameterError(f"seed range {part!r} runs backwards: write it low-high, e.g. 0-9")
            seeds.extend(range(low, high + 1))
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"seeds repeat: {seeds}")
    return seeds


def read_grid_file(path: str | Path) -> tuple[dict[str, list[Any]], dict[str, Any], list[int] | None]:
    """A ``-f`` file: ``(grid, fixed parameters, seeds)``.

    Either keyed (``grid: {alpha: [0, 0.5]}``, ``parameters: {n_users: 200}``, ``seeds: 0-4``) or
    flat, where every list is the values to sweep and a scalar is one value
    (``alpha: [0, 0.5]``, ``n_users: 200``; a list-valued parameter is then a list of lists).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"cannot read the grid file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} must hold a YAML mapping (grid:, parameters:, seeds:), got {type(data).__name__}")
    if _GRID_FILE_KEYS & set(data):
        unknown = set(data) - _GRID_FILE_KEYS
        if unknown:
            raise ReportError(f"{path}: unknown keys {sorted(unknown)}; a keyed grid file has only grid:, parameters:, seeds:")
        grid, fixed = data.get("grid") or {}, data.get("parameters") or {}
        if not isinstance(grid, dict) or not isinstance(fixed, dict):
            raise ReportError(f"{path}: grid: and parameters: must be mappings of NAME: VALUES / NAME: VALUE")
        seeds = data.get("seeds")
        return {k: list(v) if isinstance(v, list) else [v] for k, v in grid.items()}, dict(fixed), parse_seeds(seeds)
    return {k: list(v) if isinstance(v, list) else [v] for k, v in data.items()}, {}, None


def run_id(stem: str, setting: dict[str, Any], seed: Any, parameters: dict[str, Any]) -> str:
    """``<stem>-<name=value...>-seed=<s>-<hash>``: readable, a folder name, and a function of the
    notebook and every parameter it gets (the hash), so a resumed plan finds its runs again."""
    digest = hashlib.sha256(
        json.dumps({"notebook": stem, "parameters": parameters}, sort_keys=True, default=str).encode()
    ).hexdigest()[:10]
    words = [f"{k}={_short(v)}" for k, v in setting.items()] + ([f"seed={seed}"] if seed is not None else [])
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "_", "-".join(words))[:80].strip("_-")
    return "-".join(part for part in (stem, slug, digest) if part)


def _short(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict, tuple)) else str(value)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _default_seed(notebook: Path) -> Any:
    declared = declared_parameters(notebook).get("seed")
    if declared is None:
        return None
    try:
        return yaml.safe_load(declared.default)
    except yaml.YAMLError:
        return None


def plan_runs(
    notebooks: list[Path],
    grid: dict[str, list[Any]],
    seeds: list[int] | None,
    parameters: dict[str, Any] | None = None,
    raw: dict[str, list[str | None]] | None = None,
    profile: str = "default",
) -> list[dict[str, Any]]:
    """Every run of the sweep, in order (notebook, then the grid's combinations, then seeds).

    Every value is checked against each notebook's ``parameters`` cell, exactly as ``recnb report``
    checks (:func:`~recnb.report.parameters.check_parameters`); all problems of all notebooks are
    collected into one :class:`ParameterError`, raised before anything runs. ``raw`` holds the
    command-line text of each grid value (for str parameters given as numbers).
    """
    raw = raw or {}
    parameters = parameters or {}
    profiles = load_profiles()
    problems: list[str] = []
    runs: list[dict[str, Any]] = []
    stems = [nb.stem for nb in notebooks]
    if len(set(stems)) != len(stems):
        raise ReportError(f"two notebooks share a name ({', '.join(stems)}): run ids would collide; sweep them separately")
    for nb in notebooks:
        try:
            base = {**profile_parameters(profile, nb.stem, profiles), **parameters}
            fixed = check_parameters(nb, base)
        except ParameterError as exc:
            if str(exc).startswith("unknown profile"):
                raise
            problems.append(str(exc))
            continue
        nb_seeds = seeds if seeds is not None else [fixed.get("seed", _default_seed(nb))]
        values: dict[str, list[Any]] = {}
        bad = False
        for name, given in grid.items():  # one value at a time: each keeps its own raw text
            texts = raw.get(name) or [None] * len(given)
            values[name] = []
            for value, text in zip(given, texts):
                try:
                    values[name].append(check_parameters(nb, {name: value}, {name: text} if text is not None else None)[name])
                except ParameterError as exc:
                    problems.append(str(exc))
                    bad = True
        if nb_seeds != [None]:
            try:
                nb_seeds = [check_parameters(nb, {"seed": s})["seed"] for s in nb_seeds]
            except ParameterError as exc:
                problems.append(f"{exc} (the seeds are given to the notebook's `seed` parameter)")
                bad = True
        if bad:
            continue
        for combination in itertools.product(*values.values()):
            setting = dict(zip(values, combination))
            for seed in nb_seeds:
                given = {**fixed, **setting, **({"seed": seed} if seed is not None else {})}
                runs.append({
                    "id": run_id(nb.stem, setting, seed, given),
                    "notebook": nb.name, "stem": nb.stem, "path": str(nb.resolve()),
                    "setting": setting, "seed": seed, "parameters": given,
                })
    if problems:
        raise ParameterError(" | ".join(dict.fromkeys(problems)) + " Nothing was started.")
    ids = [r["id"] for r in runs]
    if len(set(ids)) != len(ids):
        raise ParameterError("the grid repeats a combination (the same values twice): give each value once")
    return runs


# ------------------------------------------------------------------------------------------ running


@dataclass
class SweepRun:
    """What one ``recnb sweep`` invocation did: the sweep's folder, and the runs it executed."""

    directory: Path
    statuses: dict[str, str] = field(default_factory=dict)  # run id -> ok / failed / lost
    skipped: int = 0  # finished before this invocation (resume)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s == "ok" for s in self.statuses.values())


def start_sweep(
    notebooks: list[str | Path],
    grid: dict[str, list[Any]] | None = None,
    seeds: Any = None,
    jobs: int | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    raw: dict[str, list[str | None]] | None = None,
    profile: str = "default",
    out_dir: str | Path = "reports",
    name: str | None = None,
    kernel_name: str = DEFAULT_KERNEL,
    html: bool = True,
    progress: bool | None = None,
    log: Log = _stderr,
) -> SweepRun:
    """Plan, check and execute a new sweep; see the module docstring for what it writes."""
    paths = find_notebooks([str(n) for n in notebooks])
    grid = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in (grid or {}).items()}
    seeds = parse_seeds(seeds)
    if "seed" in grid:
        if seeds is not None:
            raise ParameterError("seed is given twice (as a grid parameter and as seeds): give it once, as seeds")
        seeds = parse_seeds(grid.pop("seed"))
    for key, values in grid.items():
        if not values:
            raise ParameterError(f"parameter {key!r} has no values to sweep")
    runs = plan_runs(paths, grid, seeds, parameters, raw, profile)
    check_kernel(kernel_name)
    created = dt.datetime.now()
    sweep_name = name or f"sweep-{created:%Y%m%d-%H%M%S}"
    directory = Path(out_dir) / sweep_name
    if (directory / PLAN).exists():
        raise ReportError(f"{directory} already holds a sweep: resume it with `recnb sweep --resume {directory}`, or pick another --name")
    directory.mkdir(parents=True, exist_ok=True)
    plan = {
        "version": 1,
        "name": sweep_name,
        "created": created.isoformat(timespec="seconds"),
        "profile": profile,
        "kernel": kernel_name,
        "html": html,
        "grid": {k: [_jsonable(v) for v in vs] for k, vs in grid.items()},
        "seeds": seeds,
        "parameters": parameters or {},
        "notebooks": [{"name": p.name, "path": str(p.resolve()), "sha256": _sha256(p)} for p in paths],
        "environment": environment(),
        "runs": runs,
    }
    atomic_write(directory / PLAN, json.dumps(plan, indent=2, default=str) + "\n")
    log(f"sweep {directory}: {len(runs)} runs ({len(paths)} notebook(s) x {_count_settings(runs)} setting(s) x seeds)")
    return _run_plan(directory, plan, jobs, retry_failed=False, progress=progress, log=log)


def resume_sweep(
    directory: str | Path,
    jobs: int | None = None,
    *,
    retry_failed: bool = False,
    progress: bool | None = None,
    log: Log = _stderr,
) -> SweepRun:
    """Run what the sweep in ``directory`` has not finished (no ``run.json``); never a finished run.

    ``retry_failed`` also re-runs runs that finished with an error (their folders are replaced).
    Refuses when a notebook changed since the sweep started (the sweep would mix two versions).
    """
    directory = Path(directory)
    plan = read_plan(directory)
    changed = [nb["name"] for nb in plan["notebooks"] if not Path(nb["path"]).exists() or _sha256(Path(nb["path"])) != nb["sha256"]]
    if changed:
        raise ReportError(
            f"{', '.join(changed)} changed (or moved) since the sweep in {directory} started: resuming would mix "
            "two versions of the notebook. Restore it, or start a new sweep."
        )
    for nb in plan["notebooks"]:  # the declared parameters may have changed with the environment
        check_parameters(nb["path"], {})
    check_kernel(plan["kernel"])
    return _run_plan(directory, plan, jobs, retry_failed=retry_failed, progress=progress, log=log)


def _count_settings(runs: list[dict[str, Any]]) -> int:
    return len({json.dumps(r["setting"], sort_keys=True, default=str) for r in runs})


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def finished(directory: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's ``run.json`` if it finished, else ``None``."""
    path = directory / RUNS / run["id"] / RUN_JSON
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _run_plan(directory: Path, plan: dict[str, Any], jobs: int | None, retry_failed: bool,
              progress: bool | None, log: Log) -> SweepRun:
    result = SweepRun(directory)
    todo = []
    for run in plan["runs"]:
        done = finished(directory, run)
        if done is not None and retry_failed and done.get("status") != "ok":
            shutil.rmtree(directory / RUNS / run["id"])
            done = None
        if done is None:
            todo.append(run)
        else:
            result.skipped += 1
    if result.skipped:
        log(f"{result.skipped} run(s) already finished: kept as they are; {len(todo)} to run")
    if todo and plan.get("html", True):
        copy_mathjax(directory)
    jobs = max(1, min(jobs or default_jobs(), len(todo) or 1))
    try:
        if todo:
            result.statuses = _execute(directory, plan, todo, jobs, progress, log)
    except KeyboardInterrupt:
        result.interrupted = True
        log(f"interrupted: the runs in flight are lost; `recnb sweep --resume {directory}` runs what is left")
    write_outputs(directory)
    return result


# Worker processes -----------------------------------------------------------------------------


class _Worker:
    def __init__(self, directory: Path, jobs: int, events: queue.Queue, number: int, log_file: Any):
        env = dict(os.environ)
        env[_PARENT_ENV] = str(os.getpid())
        if "OMP_NUM_THREADS" not in env:  # N kernels side by side: share the cores, do not fight over them
            env["OMP_NUM_THREADS"] = str(max(1, default_jobs() // jobs))
        code = "from recnb.report.sweeps import _serve; _serve()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env, text=True, bufsize=1,
            start_new_session=True,  # Ctrl-C in the terminal goes to the runner, which decides
        )
        self.number = number
        self.run: dict[str, Any] | None = None
        self.started = 0.0
        threading.Thread(target=self._read, args=(events,), daemon=True).start()

    def _read(self, events: queue.Queue) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            events.put((self, line.strip()))
        events.put((self, None))

    def give(self, run: dict[str, Any]) -> None:
        self.run, self.started = run, time.perf_counter()
        self.proc.stdin.write(run["id"] + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


def _execute(directory: Path, plan: dict[str, Any], todo: list[dict[str, Any]], jobs: int,
             progress: bool | None, log: Log) -> dict[str, str]:
    """Run ``todo`` on ``jobs`` workers; returns run id -> ok / failed / lost."""
    from tqdm.auto import tqdm

    pending = deque(todo)
    statuses: dict[str, str] = {}
    events: queue.Queue = queue.Queue()
    counts = {"ok": 0, "failed": 0, "lost": 0}
    log_file = open(directory / "workers.log", "a", encoding="utf-8")  # noqa: SIM115 - closed below
    workers: list[_Worker] = []
    numbers = itertools.count(1)
    bar = tqdm(total=len(todo), unit="run", desc="sweep", file=sys.stderr, dynamic_ncols=True,
               disable=(not sys.stderr.isatty()) if progress is None else not progress, smoothing=0.1)

    def postfix() -> None:
        running = sum(w.run is not None for w in workers)
        bar.set_postfix_str(f"ok {counts['ok']} · failed {counts['failed'] + counts['lost']} · running {running}", refresh=True)

    def assign(worker: _Worker) -> None:
        if pending:
            worker.give(pending.popleft())
        else:
            worker.run = None
            worker.close()

    def settle(worker: _Worker, status: str, detail: str = "") -> None:
        run = worker.run
        assert run is not None
        statuses[run["id"]] = status
        counts[status] += 1
        seconds = time.perf_counter() - worker.started
        bar.update(1)
        line = f"{status.upper():6} {run['id']} ({seconds:.1f}s){detail}"
        if status != "ok" or bar.disable:
            (bar.write if not bar.disable else log)(f"[{len(statuses)}/{len(todo)}] {line}")
        worker.run = None

    try:
        for _ in range(jobs):
            worker = _Worker(directory, jobs, events, next(numbers), log_file)
            workers.append(worker)
            assign(worker)
        postfix()
        while any(w.run is not None for w in workers) or pending:
            try:
                worker, line = events.get(timeout=1.0)
            except queue.Empty:
                bar.refresh()
                continue
            if line is None:  # the worker exited: what it was running is lost unless it finished
                worker.proc.wait()
                workers.remove(worker)
                if worker.run is not None:
                    done = finished(directory, worker.run)
                    if done is not None:
                        settle(worker, "ok" if done["status"] == "ok" else "failed", _error_text(done))
                    else:
                        settle(worker, "lost", f": its process exited with {worker.proc.returncode} before the run "
                               f"finished (see {directory / 'workers.log'}); --resume runs it again")
                if pending:
                    replacement = _Worker(directory, jobs, events, next(numbers), log_file)
                    workers.append(replacement)
                    assign(replacement)
            elif line.startswith("done ") and worker.run is not None and line[5:] == worker.run["id"]:
                done = finished(directory, worker.run) or {"status": "failed"}
                settle(worker, "ok" if done["status"] == "ok" else "failed", _error_text(done))
                assign(worker)
            postfix()
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    finally:
        bar.close()
        for worker in workers:
            worker.close()
        for worker in workers:
            try:
                worker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        log_file.close()
    return statuses


def _error_text(done: dict[str, Any]) -> str:
    error = done.get("error")
    if not error:
        return ""
    cell = f"cell {error['cell']}: " if error.get("cell") is not None else ""
    return f": {cell}{error.get('ename')}: {error.get('evalue')}"


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the runner dies (even by SIGKILL); exit if it already has."""
    parent = int(os.environ.get(_PARENT_ENV, "0"))
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if parent and os.getppid() != parent:
        os._exit(3)


def _serve() -> None:
    """A worker: reads run ids on stdin, executes each, answers ``done <id>`` on stdout."""
    _die_with_parent()
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to the log, never into the protocol
    sys.stdout = sys.stderr
    directory = Path(sys.argv[1])
    plan = read_plan(directory)
    runs = {r["id"]: r for r in plan["runs"]}
    for line in sys.stdin:
        run = runs[line.strip()]
        print(f"{dt.datetime.now():%H:%M:%S} start {run['id']}", file=sys.stderr, flush=True)
        execute_run(directory, plan, run)
        answer.write(f"done {run['id']}\n")


def execute_run(directory: Path, plan: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Execute one run into ``runs/<id>/`` and write its ``run.json`` (last); returns that record.

    A folder that already has a ``run.json`` is never touched. Leftovers of a run that was in
    flight when its runner died are removed first.
    """
    folder = directory / RUNS / run["id"]
    done = finished(directory, run)
    if done is not None:
        return done
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    notebook, partial = folder / NOTEBOOK, folder / _PARTIAL
    started = dt.datetime.now()
    t0 = time.perf_counter()
    error = None
    try:
        execute(Path(run["path"]), partial, run["parameters"], plan["kernel"])
        status = "ok"
    except Exception as exc:  # recorded in run.json; the other runs go on
        status, error = "failed", _error_of(exc)
    record: dict[str, Any] = {
        "id": run["id"], "notebook": run["notebook"], "status": status,
        "setting": run["setting"], "seed": run["seed"], "parameters": run["parameters"],
        "started": started.isoformat(timespec="seconds"), "duration_s": round(time.perf_counter() - t0, 3),
        "threads": os.environ.get("OMP_NUM_THREADS"), "metrics": {}, "error": error, "output": None, "html": None,
    }
    if partial.exists():
        os.replace(partial, notebook)
        record["output"] = NOTEBOOK
        executed = nbformat.read(str(notebook), as_version=4)
        record["metrics"] = read_metrics(executed)
        if error is not None:
            error["source"], error["traceback"] = failing_cell(executed, error.get("cell"))
        if plan.get("html", True):
            try:
                mathjax = relative_url(directory / "_static" / "mathjax", folder)
                atomic_write(folder / NOTEBOOK_HTML, notebook_html(executed, mathjax, resources_dir=Path(run["path"]).parent,
                                                                   title=run["id"]))
                record["html"] = NOTEBOOK_HTML
            except Exception as exc:  # a rendering problem must not hide the result
                print(f"could not render HTML for {run['id']}: {exc}", file=sys.stderr, flush=True)
    atomic_write(folder / RUN_JSON, json.dumps(record, indent=2, default=str) + "\n")
    return record


# --------------------------------------------------------------------------------------------- API


def sweep(
    notebooks: str | Path | list[str | Path],
    grid: dict[str, Any] | None = None,
    seeds: Any = None,
    jobs: int | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    profile: str = "default",
    out_dir: str | Path = "reports",
    name: str | None = None,
    kernel_name: str = DEFAULT_KERNEL,
    html: bool = True,
    resume: str | Path | None = None,
    progress: bool | None = None,
    log: Log = _stderr,
) -> pd.DataFrame:
    """Run a sweep (or, with ``resume=<folder>``, finish one) and return its aggregate.

    ``notebooks``: paths, stems or course numbers; ``grid``: ``{name: [values]}`` (every
    combination); ``seeds``: a list, ``"0-9"`` or ``None`` (the profile's or the notebook's own
    seed); ``jobs``: runs at a time (default: the number of cores); ``parameters``: fixed for
    every run; ``profile``: the report's profiles (``"smoke"``). Raises ``ParameterError`` before
    anything runs if a name or value does not fit a notebook. Failed runs do not raise: they are
    in ``load_sweep(path).runs``. The frame's ``attrs["path"]`` is the sweep's folder.
    """
    if resume is not None:
        done = resume_sweep(resume, jobs, progress=progress, log=log)
    else:
        done = start_sweep(
            notebooks if isinstance(notebooks, list) else [notebooks], grid, seeds, jobs, parameters=parameters,
            profile=profile, out_dir=out_dir, name=name, kernel_name=kernel_name, html=html, progress=progress, log=log,
        )
    if done.interrupted:
        raise KeyboardInterrupt(f"sweep interrupted; resume with sweep(None, resume={str(done.directory)!r})")
    result = load_sweep(done.directory)
    failed = result.runs[result.runs["status"] != "ok"]
    if len(failed):
        log(f"{len(failed)} of {len(result.runs)} runs did not finish ok: see {done.directory / 'index.html'}")
    aggregate = result.aggregate
    aggregate.attrs["path"] = str(done.directory)
    return aggregate


__all__ = ["Sweep", "SweepRun", "load_sweep", "parse_seeds", "plan_runs", "read_grid_file", "resume_sweep", "start_sweep", "sweep"]
