"""``recnb compare A B``: two reports or sweeps, every recorded metric side by side.

A side is a report (a folder with ``summary.json``, or that file) or a sweep (a folder with
``sweep.json``). Metrics are matched by notebook, setting and name. A report's setting is empty; a
sweep's is the values of the swept parameters that vary in it (a sweep of one setting matches a
report). For each metric: the value on each side (the mean over seeds for a sweep), ``diff = B − A``
and, where both sides have several seeds, a 95 % percentile-bootstrap interval of that difference
(paired by seed when both sides ran the same seeds, else the two sides resampled independently)
and whether it excludes 0 (``outside_seeds``: the difference is larger than seed-to-seed noise).

``status`` is ``same``, ``within`` (``|diff| <= tolerance``), ``moved`` (beyond it), ``changed``
(a value that is not a number differs), ``only in A`` (gone from B: the notebook failed, or stopped
recording it) or ``only in B`` (new). :func:`regressions` are the rows with ``moved``, ``changed``
or ``only in A``; ``recnb compare`` exits 1 when there is one.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recnb.report.aggregate import BOOTSTRAP_METHOD, BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES, PLAN, load_sweep, numeric
from recnb.report.files import format_metric
from recnb.report.runner import ReportError

COLUMNS = ["notebook", "setting", "metric", "a", "b", "diff", "n_a", "n_b", "diff_low", "diff_high", "outside_seeds", "status"]
FAILING = ("moved", "changed", "only in A")


@dataclass
class Side:
    """One side of a comparison: ``table`` has ``notebook, setting, metric, values, seeds``."""

    path: Path
    kind: str  # "report" or "sweep"
    table: pd.DataFrame


def load_side(path: str | Path) -> Side:
    """Read a report (folder or ``summary.json``) or a sweep (folder with ``sweep.json``)."""
    path = Path(path)
    if path.is_dir() and (path / PLAN).exists():
        return Side(path, "sweep", _sweep_table(path))
    summary = path if path.is_file() else path / "summary.json"
    if not summary.exists():
        raise ReportError(
            f"{path} is neither a report (no summary.json) nor a sweep (no {PLAN}): pass a folder that "
            "`recnb report` or `recnb sweep` wrote, or a summary.json"
        )
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
        notebooks = data["notebooks"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{summary} is not a report summary: {exc}") from None
    rows = [
        {"notebook": Path(r["notebook"]).stem, "setting": "", "metric": metric, "values": [value],
         "seeds": [(r.get("parameters") or {}).get("seed")]}
        for r in notebooks for metric, value in (r.get("metrics") or {}).items()
    ]
    return Side(summary.parent, "report", pd.DataFrame(rows, columns=["notebook", "setting", "metric", "values", "seeds"]))


def _sweep_table(path: Path) -> pd.DataFrame:
    sweep = load_sweep(path)
    res = sweep.results[sweep.results["status"] == "ok"]
    rows = []
    for notebook, mine in res.groupby("notebook", sort=False):
        planned = sweep.runs[sweep.runs["notebook"] == notebook]
        varying = [k for k in sweep.swept if planned[k].nunique(dropna=False) > 1]
        for key, group in mine.groupby([*varying, "metric"], sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            setting = ", ".join(f"{k}={v}" for k, v in zip(varying, key[:-1]))
            values = [json.loads(t) if isinstance(t, str) else v for v, t in zip(group["value"], group["text"])]
            rows.append({"notebook": notebook, "setting": setting, "metric": key[-1], "values": values,
                         "seeds": list(group["seed"])})
    return pd.DataFrame(rows, columns=["notebook", "setting", "metric", "values", "seeds"])


def parse_tolerance(text: str | float) -> tuple[float, bool]:
    """``0.01`` (absolute) or ``2%`` (relative to A's value) -> ``(tolerance, relative)``."""
    raw = str(text).strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1]) / 100 if relative else float(raw)
    except ValueError:
        raise ReportError(f"cannot read tolerance {text!r}: give a number (0.01) or a percentage (2%)") from None
    if not value >= 0:
        raise ReportError(f"tolerance must be >= 0, got {text!r}")
    return value, relative


def difference_interval(a: list[float], b: list[float], seeds_a: list[Any] | None = None,
                        seeds_b: list[Any] | None = None) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of ``mean(b) − mean(a)``; NaN unless both have 2+ values.

    Paired (the mean of per-seed differences) when both sides ran the same seeds, else unpaired.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if seeds_a is not None and seeds_b is not None and None not in seeds_a and sorted(seeds_a) == sorted(seeds_b):
            order_a, order_b = np.argsort(seeds_a, kind="stable"), np.argsort(seeds_b, kind="stable")
            d = y[order_b] - x[order_a]
            res = stats.bootstrap((d,), np.mean, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                                  method=BOOTSTRAP_METHOD, vectorized=True, rng=rng)
        else:
            def diff(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
                return np.mean(q, axis=axis) - np.mean(p, axis=axis)

            res = stats.bootstrap((x, y), diff, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                                  method=BOOTSTRAP_METHOD, vectorized=True, rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare(a: str | Path | Side, b: str | Path | Side, tolerance: float | str = 0.0) -> pd.DataFrame:
    """Every metric of ``a`` and ``b`` side by side (see the module docstring for the columns)."""
    tol, relative = parse_tolerance(tolerance)
    left = a if isinstance(a, Side) else load_side(a)
    right = b if isinstance(b, Side) else load_side(b)
    keys = ["notebook", "setting", "metric"]
    merged = left.table.merge(right.table, on=keys, how="outer", suffixes=("_a", "_b"), sort=False, indicator=True)
    rows = []
    for row in merged.to_dict("records"):
        out = {k: row[k] for k in keys}
        if row["_merge"] != "both":
            side = "a" if row["_merge"] == "left_only" else "b"
            values = row[f"values_{side}"]
            out.update({side: _summary(values), f"n_{side}": len(values),
                        "status": "only in A" if side == "a" else "only in B"})
            rows.append(out)
            continue
        va, vb = row["values_a"], row["values_b"]
        out.update({"n_a": len(va), "n_b": len(vb)})
        na, nb = [numeric(v) for v in va], [numeric(v) for v in vb]
        if None in na or None in nb:  # text, lists...: equal or not
            out.update({"a": _summary(va), "b": _summary(vb), "status": "same" if va == vb else "changed"})
            rows.append(out)
            continue
        mean_a, mean_b = float(np.mean(na)), float(np.mean(nb))
        diff = mean_b - mean_a
        low, high = difference_interval(na, nb, row["seeds_a"], row["seeds_b"])
        limit = tol * abs(mean_a) if relative else tol
        if diff == 0 or (math.isnan(mean_a) and math.isnan(mean_b)):
            status = "same"
        elif abs(diff) <= limit:
            status = "within"
        else:
            status = "moved"
        out.update({
            "a": mean_a, "b": mean_b, "diff": diff, "diff_low": low, "diff_high": high,
            "outside_seeds": None if math.isnan(low) else bool(low > 0 or high < 0), "status": status,
        })
        rows.append(out)
    return pd.DataFrame(rows, columns=COLUMNS)


def _summary(values: list[Any]) -> Any:
    numbers = [numeric(v) for v in values]
    if values and None not in numbers:
        return float(np.mean(numbers))
    return values[0] if len(values) == 1 else values


def regressions(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that make ``recnb compare`` exit 1."""
    return table[table["status"].isin(FAILING)]


def format_table(table: pd.DataFrame) -> str:
    """The comparison as plain text: numbers to 4 significant digits, blanks for what does not apply."""
    if not len(table):
        return "(no metrics on either side)"

    def show(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (int, np.integer)):
            return str(value)
        return format_metric(value)

    shown = table.copy()
    shown["interval"] = [
        f"[{format_metric(lo)}, {format_metric(hi)}]" if not (isinstance(lo, float) and math.isnan(lo)) else ""
        for lo, hi in zip(table["diff_low"], table["diff_high"])
    ]
    columns = ["notebook", "setting", "metric", "a", "b", "diff", "n_a", "n_b", "interval", "outside_seeds", "status"]
    shown = shown[columns].astype(object).map(show) if hasattr(shown, "map") else shown[columns].applymap(show)
    if not (table["setting"] != "").any():
        shown = shown.drop(columns="setting")
    return shown.rename(columns={"outside_seeds": "beyond seeds"}).to_string(index=False)
