"""A sweep's results read back: the runs, the tidy results, the aggregate over seeds, its index page.

Everything here is computed from the sweep's files (``sweep.json`` and each run's ``run.json``), so
:func:`load_sweep` gives the same frames whether the sweep finished, was interrupted, or was
resumed. The aggregate uses the runs that finished ``ok``; for each notebook, setting (the values
of the swept parameters) and numeric metric it holds the number of seeds ``n``, the seeds planned
but missing (failed or not yet run), the mean, the standard deviation (``ddof=1``), min, max and a
95 % percentile-bootstrap interval of the mean over seeds (``scipy.stats.bootstrap``, 9,999
resamples, a fixed random generator per row so the numbers never depend on run order). With one
seed there is no spread to resample: ``std`` and the interval are NaN and ``note`` says so.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recnb.evaluation.uncertainty import bootstrap_ci
from recnb.report.files import atomic_write, format_metric
from recnb.report.html import render_page
from recnb.report.runner import ReportError

PLAN = "sweep.json"
RUNS = "runs"
RUN_JSON = "run.json"
CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
BOOTSTRAP_METHOD = "percentile"
ONE_SEED = "one seed: no spread, so no std and no interval"
AGGREGATE_COLUMNS = ["n", "n_missing", "mean", "std", "min", "max", "ci_low", "ci_high", "note"]


def read_plan(directory: str | Path) -> dict[str, Any]:
    """The plan ``recnb sweep`` wrote into ``directory/sweep.json``."""
    path = Path(directory) / PLAN
    if not path.exists():
        raise ReportError(f"{directory} is not a sweep (no {PLAN}): pass the folder `recnb sweep` wrote, e.g. reports/sweep-...")
    return json.loads(path.read_text(encoding="utf-8"))


def read_run(directory: str | Path, run_id: str) -> dict[str, Any] | None:
    """The ``run.json`` of run ``run_id`` (``None`` while it has not finished)."""
    path = Path(directory) / RUNS / run_id / RUN_JSON
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def numeric(value: Any) -> float | None:
    """A recorded value as a float if it is a number (``"nan"``/``"inf"`` as stored by ``record``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return None


def cell(value: Any) -> Any:
    """A parameter value as a frame cell: lists and mappings as their JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, tuple, dict)) else value


def bootstrap_interval(values: Any, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The percentile-bootstrap interval of the mean of ``values`` over seeds:
    :func:`recnb.evaluation.uncertainty.bootstrap_ci` with ``method="percentile"``.

    NaN, NaN for fewer than two values or a non-finite one (there is no spread to resample).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 or not np.all(np.isfinite(x)):
        return math.nan, math.nan
    ci = bootstrap_ci(x, n_resamples=n_resamples, confidence=confidence, seed=seed, method=BOOTSTRAP_METHOD)
    return ci.low, ci.high


@dataclass
class Sweep:
    """A sweep read back: its plan, one row per planned run, the tidy results and the aggregate.

    ``runs``: ``id, notebook, <swept parameters>, seed, status (ok / failed / pending), duration_s,
    error, output, html`` (``output``/``html``: paths relative to the sweep's folder).
    ``results``: one row per run x metric: ``id, notebook, <every parameter>, status, metric,
    value`` (a float; NaN for a value that is not a number) and ``text`` (such a value as JSON).
    ``aggregate``: ``notebook, <swept parameters>, metric`` and :data:`AGGREGATE_COLUMNS`.
    """

    directory: Path
    plan: dict[str, Any]
    runs: pd.DataFrame
    results: pd.DataFrame
    aggregate: pd.DataFrame

    @property
    def swept(self) -> list[str]:
        """The grid's parameter names (the seed is not one of them)."""
        return list(self.plan.get("grid", {}))

    @property
    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "failed"]

    @property
    def pending(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "pending"]

    def notebook(self, run_id: str) -> Path:
        """The executed notebook of ``run_id`` (open it with ``nbformat.read``)."""
        return self.directory / RUNS / run_id / "notebook.ipynb"


def collect(directory: Path, plan: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, results)`` from the plan and the ``run.json`` files there are."""
    swept = list(plan.get("grid", {}))
    run_rows, result_rows = [], []
    order: dict[str, None] = dict.fromkeys([*swept, "seed"])
    for run in plan["runs"]:
        order.update(dict.fromkeys(run["parameters"]))
    for run in plan["runs"]:
        done = read_run(directory, run["id"])
        status = done["status"] if done else "pending"
        error = (done or {}).get("error") or None
        folder = f"{RUNS}/{run['id']}/"
        run_rows.append({
            "id": run["id"], "notebook": run["stem"], **{k: cell(run["setting"].get(k)) for k in swept},
            "seed": run["seed"], "status": status, "duration_s": done["duration_s"] if done else math.nan,
            "error": f"{error.get('ename')}: {error.get('evalue')}" if error else None,
            "output": folder + done["output"] if done and done.get("output") else None,
            "html": folder + done["html"] if done and done.get("html") else None,
        })
        if not done:
            continue
        parameters = {k: cell(run["parameters"].get(k, run["seed"] if k == "seed" else None)) for k in order}
        for metric, value in done.get("metrics", {}).items():
            number = numeric(value)
            result_rows.append({
                "id": run["id"], "notebook": run["stem"], **parameters, "status": status, "metric": metric,
                "value": number if number is not None else math.nan,
                "text": None if number is not None else json.dumps(value),
            })
    runs = pd.DataFrame(run_rows, columns=["id", "notebook", *swept, "seed", "status", "duration_s", "error", "output", "html"])
    results = pd.DataFrame(result_rows, columns=["id", "notebook", *order, "status", "metric", "value", "text"])
    return runs, results


def aggregate(results: pd.DataFrame, swept: list[str], runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per notebook, setting and metric, over the seeds of the runs that finished ok: see the module docstring.

    ``runs`` (optional) gives the planned seeds per setting, for ``n_missing``.
    """
    keys = ["notebook", *swept]
    columns = [*keys, "metric", *AGGREGATE_COLUMNS]
    usable = results[(results["status"] == "ok") & results["text"].isna()] if len(results) else results
    if not len(usable):
        return pd.DataFrame(columns=columns)
    planned = runs.groupby(keys, dropna=False, sort=False).size() if runs is not None and len(runs) else None
    rows = []
    for key, group in usable.groupby([*keys, "metric"], dropna=False, sort=False):
        values = group["value"].to_numpy(dtype=np.float64)
        low, high = bootstrap_interval(values)
        n = len(values)
        setting = key[:-1] if len(keys) > 1 else key[0]
        missing = int(planned.loc[setting]) - n if planned is not None else 0
        rows.append({
            **dict(zip([*keys, "metric"], key)), "n": n, "n_missing": missing,
            "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if n > 1 else math.nan,
            "min": float(np.min(values)), "max": float(np.max(values)), "ci_low": low, "ci_high": high,
            "note": ONE_SEED if n == 1 else "",
        })
    return pd.DataFrame(rows, columns=columns)


def load_sweep(path: str | Path) -> Sweep:
    """Read the sweep in folder ``path`` (finished, interrupted or resumed) as a :class:`Sweep`."""
    directory = Path(path)
    plan = read_plan(directory)
    runs, results = collect(directory, plan)
    swept = list(plan.get("grid", {}))
    return Sweep(directory, plan, runs, results, aggregate(results, swept, runs))


def write_outputs(directory: str | Path) -> Sweep:
    """Write ``results.csv``, ``aggregate.csv`` and ``index.html`` of the sweep in ``directory``."""
    result = load_sweep(directory)
    atomic_write(result.directory / "results.csv", result.results.to_csv(index=False))
    atomic_write(result.directory / "aggregate.csv", result.aggregate.to_csv(index=False))
    atomic_write(result.directory / "index.html", sweep_index_html(result))
    return result


# ---------------------------------------------------------------------------------------- the page


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def metric_figures(result: Sweep) -> list[dict[str, Any]]:
    """One PNG (a data URI) per notebook and metric: the mean against the first swept parameter
    that varies, a band for the bootstrap interval, every seed as a dot; other varying parameters
    are separate lines."""
    from matplotlib.figure import Figure

    agg, res = result.aggregate, result.results
    figures = []
    notebooks = list(dict.fromkeys(agg["notebook"])) if len(agg) else []
    for notebook in notebooks:
        mine = agg[agg["notebook"] == notebook]
        dots = res[(res["notebook"] == notebook) & (res["status"] == "ok") & res["text"].isna()]
        varying = [k for k in result.swept if mine[k].nunique(dropna=False) > 1]
        x_name = varying[0] if varying else None
        for metric in dict.fromkeys(mine["metric"]):
            rows = mine[mine["metric"] == metric]
            seeds = dots[dots["metric"] == metric]
            fig = Figure(figsize=(6.0, 3.4), dpi=100)
            ax = fig.add_subplot()
            numeric_x = x_name is not None and all(_is_number(v) for v in rows[x_name])
            if x_name is None:
                positions = {None: 0.0}
            elif numeric_x:
                positions = {v: float(v) for v in rows[x_name]}
            else:
                positions = {v: float(i) for i, v in enumerate(dict.fromkeys(rows[x_name]))}
            others = varying[1:]
            series = rows.groupby(others, dropna=False, sort=False) if others else [((), rows)]
            for label, part in series:
                label = label if isinstance(label, tuple) else (label,)
                text = ", ".join(f"{k}={v}" for k, v in zip(others, label)) or "mean over seeds"
                xs = np.array([positions[v] for v in part[x_name]]) if x_name else np.zeros(len(part))
                order = np.argsort(xs, kind="stable")
                xs, mean = xs[order], part["mean"].to_numpy()[order]
                low, high = part["ci_low"].to_numpy(dtype=float)[order], part["ci_high"].to_numpy(dtype=float)[order]
                line = ax.plot(xs, mean, marker="o", label=text)[0]
                if np.isfinite(low).any():
                    if len(xs) > 1:
                        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
                    else:
                        ax.errorbar(xs, mean, yerr=[mean - low, high - mean], color=line.get_color(), capsize=4)
                if others:
                    mask = np.ones(len(seeds), dtype=bool)
                    for k, v in zip(others, label):
                        mask &= (seeds[k] == v).to_numpy()
                    seed_rows = seeds[mask]
                else:
                    seed_rows = seeds
                sx = [positions.get(v, math.nan) for v in seed_rows[x_name]] if x_name else [0.0] * len(seed_rows)
                ax.scatter(sx, seed_rows["value"], s=10, color=line.get_color(), alpha=0.45, zorder=3)
            if x_name is None:
                ax.set_xticks([0.0], ["all runs"])
            elif not numeric_x:
                ax.set_xticks(list(positions.values()), [str(v) for v in positions])
            ax.set_xlabel(x_name or "")
            ax.set_ylabel(metric)
            ax.set_title(f"{metric}" + (f" — {notebook}" if len(notebooks) > 1 else ""), fontsize=11)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, title="band: 95 % bootstrap interval of the mean; dots: seeds", title_fontsize=7)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", bbox_inches="tight")
            figures.append({
                "notebook": notebook, "metric": metric, "x": x_name,
                "src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
            })
    return figures


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return format_metric(value)


def sweep_index_html(result: Sweep) -> str:
    """The sweep's ``index.html``: failures first, plots, the aggregate table, every run with links."""
    plan, runs = result.plan, result.runs
    by_id = {r["id"]: r for r in plan["runs"]}
    failures = []
    for row in runs[runs["status"] == "failed"].itertuples(index=False):
        done = read_run(result.directory, row.id) or {}
        error = done.get("error") or {}
        failures.append({
            "id": row.id, "setting": _setting_text(by_id[row.id]), "cell": error.get("cell"),
            "ename": error.get("ename", "error"), "evalue": error.get("evalue", ""),
            "source": error.get("source"), "traceback": error.get("traceback"),
            "links": _links(row),
        })
    aggregate_rows = [
        {**{k: _fmt(v) for k, v in row.items()}, "raw_note": row["note"]}
        for row in result.aggregate.to_dict("records")
    ]
    run_rows = [
        {"id": row.id, "notebook": row.notebook, "setting": _setting_text(by_id[row.id]), "status": row.status,
         "duration": _fmt(row.duration_s) if row.status != "pending" else "", "links": _links(row)}
        for row in runs.itertuples(index=False)
    ]
    counts = {s: int((runs["status"] == s).sum()) for s in ("ok", "failed", "pending")}
    env = dict(plan.get("environment", {}))
    if "git_commit" in env and env.pop("git_dirty", False):
        env["git_commit"] += " (with uncommitted changes)"
    return render_page(
        "sweep_index.html.j2", plan=plan, name=plan.get("name", result.directory.name), counts=counts,
        failures=failures, figures=metric_figures(result), aggregate_columns=list(result.aggregate.columns),
        aggregate=aggregate_rows, runs=run_rows, directory=str(result.directory),
        grid=[(k, ", ".join(json.dumps(v) for v in vs)) for k, vs in plan.get("grid", {}).items()],
        seeds=_seeds_text(plan.get("seeds")), environment=[(k, v) for k, v in env.items() if v is not None],
        method=f"{CONFIDENCE:.0%} {BOOTSTRAP_METHOD} bootstrap of the mean over seeds (scipy.stats.bootstrap, "
               f"{N_RESAMPLES} resamples, rng seed {BOOTSTRAP_SEED})",
    )


def _links(row: Any) -> list[tuple[str, str]]:
    links = [("HTML", row.html)] if row.html else []
    return links + ([("notebook", row.output)] if row.output else [])


def _setting_text(run: dict[str, Any]) -> str:
    words = [f"{k}={json.dumps(v) if isinstance(v, (list, dict, str)) else v}" for k, v in run["setting"].items()]
    return ", ".join(words + ([f"seed={run['seed']}"] if run.get("seed") is not None else []))


def _seeds_text(seeds: list[int] | None) -> str:
    if not seeds:
        return "the notebooks' own"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))
