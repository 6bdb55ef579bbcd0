"""The committed replications: ``notebooks/replications/<notebook>/``, written by ``make replications``
(one ``recnb sweep`` per chapter over seeds 0-4) and read by the chapters.

Each table must come from the notebook it names, run with parameters that notebook declares, over
seeds 0-4; ``results.csv`` must be what the runs' ``run.json`` files say, and ``aggregate.csv`` must
be recomputed from ``results.csv`` exactly (the mean) and through
:func:`recnb.evaluation.uncertainty.bootstrap_ci` (the interval). A hand-edited number fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recnb.evaluation.uncertainty import bootstrap_ci
from recnb.report import load_sweep
from recnb.report.aggregate import BOOTSTRAP_METHOD, BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES
from recnb.report.parameters import check_parameters, declared_parameters
from recnb.report.record import read_metrics
from recnb.report.runner import NOTEBOOKS_DIR

REPLICATIONS = NOTEBOOKS_DIR / "replications"
TABLES = sorted(p for p in REPLICATIONS.glob("*") if (p / "sweep.json").exists())
SEEDS = [0, 1, 2, 3, 4]
NOT_PARAMETERS = {"id", "notebook", "status", "metric", "value", "text"}


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")  # floats exactly as written


def test_the_replications_of_issue_18_are_committed():
    names = {p.name for p in TABLES}
    assert {"02_sigmoid_loss", "04_collaborative_filtering", "05_content_features", "11_cold_start_and_exploration"} <= names, (
        f"missing under {REPLICATIONS}: run `make replications` (found {sorted(names)})"
    )


@pytest.mark.parametrize("folder", TABLES, ids=lambda p: p.name)
def test_a_replication_names_its_notebook_and_declared_parameters(folder: Path):
    plan = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    assert [nb["name"] for nb in plan["notebooks"]] == [f"{folder.name}.ipynb"], "one folder per notebook, named after it"
    notebook = NOTEBOOKS_DIR / f"{folder.name}.ipynb"
    assert notebook.exists()
    declared = declared_parameters(notebook)
    assert plan["seeds"] == SEEDS
    for run in plan["runs"]:
        assert run["stem"] == folder.name
        assert set(run["parameters"]) <= set(declared), set(run["parameters"]) - set(declared)
        check_parameters(notebook, run["parameters"])  # the types too
    results = _csv(folder / "results.csv")
    assert set(results.columns) - NOT_PARAMETERS <= set(declared)
    assert (results["status"] == "ok").all() and (results["notebook"] == folder.name).all()
    swept = list(plan["grid"])
    for _, setting in results.groupby(swept or ["notebook"]):
        assert sorted(setting["seed"].unique()) == SEEDS
    # every metric in the table is one the committed notebook records: the table is this notebook's
    recorded = set(read_metrics(notebook))
    assert set(results["metric"]) <= recorded, sorted(set(results["metric"]) - recorded)


@pytest.mark.parametrize("folder", TABLES, ids=lambda p: p.name)
def test_results_are_the_runs_and_the_aggregate_is_recomputed_from_them(folder: Path):
    results = _csv(folder / "results.csv")
    runs = load_sweep(folder).results  # from sweep.json and every run's run.json
    assert len(runs) == len(results)
    a = results.set_index(["id", "metric"])["value"].sort_index()
    b = runs.set_index(["id", "metric"])["value"].astype(float).sort_index()
    assert a.index.equals(b.index)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # NaN (text values) match NaN

    plan = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    keys = ["notebook", *plan["grid"], "metric"]
    aggregate = _csv(folder / "aggregate.csv")
    numeric = results[results["text"].isna()]
    assert len(aggregate) == numeric.groupby(keys).ngroups
    for key, group in numeric.groupby(keys, sort=False):
        row = aggregate[(aggregate[keys] == pd.Series(key, index=keys)).all(axis=1)]
        assert len(row) == 1, key
        row = row.iloc[0]
        values = group["value"].to_numpy()  # in the file's (seed) order, as the sweep aggregated them
        assert row["n"] == len(values) == len(SEEDS)
        np.testing.assert_array_equal([row["mean"], row["min"], row["max"]], [np.mean(values), values.min(), values.max()], err_msg=str(key))
        if not np.all(np.isfinite(values)):  # no interval over a NaN or infinite value
            assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"]), key
            continue
        assert row["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12, abs=1e-15)
        ci = bootstrap_ci(values, n_resamples=N_RESAMPLES, confidence=CONFIDENCE, seed=BOOTSTRAP_SEED, method=BOOTSTRAP_METHOD)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-15), key
