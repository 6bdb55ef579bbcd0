"""``recnb sweep`` on tiny notebooks written by the tests, executed by the real papermill and kernel.

Most notebooks here write their metrics with a three-line stand-in for ``recnb.report.record``
that displays exactly what ``record`` displays (importing recnb in the kernel costs seconds per
run on this machine); the failing-run test uses the real ``record``.
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from scipy import stats

from recnb.cli import main
from recnb.report import load_sweep, sweep
from recnb.report.aggregate import ONE_SEED, aggregate, bootstrap_interval
from recnb.report.parameters import ParameterError
from recnb.report.record import METRIC_MIME
from recnb.report.runner import DEFAULT_KERNEL, NOTEBOOKS_DIR
from recnb.report.sweeps import parse_seeds, plan_runs, read_grid_file, run_id

RECORD = (
    "from IPython.display import display\n"
    "def record(name, value):\n"
    f"    display({{{METRIC_MIME!r}: {{'name': name, 'value': value}}, 'text/plain': f'recorded {{name}}'}}, raw=True)\n"
)
SLOW = "import time\ntime.sleep(0.3)"


def slow_notebook(folder: Path, marker: Path) -> Path:
    """``m = 10 alpha + seed²`` and a text metric, after a short sleep; appends ``alpha seed`` to ``marker``."""
    nb = new_notebook()
    first = new_code_cell(f"seed = 0\nalpha = 1\nmarker = {str(marker)!r}")
    first.metadata["tags"] = ["parameters"]
    last = ("with open(marker, 'a') as f:\n    f.write(f'{alpha} {seed}\\n')\n"
            "record('m', 10 * alpha + seed ** 2)\nrecord('kind', 'tiny')")
    nb.cells = [first, new_code_cell(RECORD), new_code_cell(SLOW), new_code_cell(last)]
    nb.metadata["kernelspec"] = {"name": DEFAULT_KERNEL, "display_name": "Python (recnb)", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "slow.ipynb"))
    return folder / "slow.ipynb"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """One uninterrupted sweep, alpha 1 and 2 x seeds 0-2, through the Python API."""
    root = tmp_path_factory.mktemp("baseline")
    nb = slow_notebook(root / "base", root / "markers.txt")
    agg = sweep(nb, {"alpha": [1, 2]}, seeds="0-2", jobs=2, html=False, out_dir=root, name="baseline", progress=False)
    assert Path(agg.attrs["path"]) == root / "baseline"
    assert len((root / "markers.txt").read_text().splitlines()) == 6
    return root / "baseline"


def test_baseline_aggregate_against_a_hand_computation(baseline):
    result = load_sweep(baseline)
    assert list(result.runs["status"]) == ["ok"] * 6
    assert len(result.results) == 12  # 6 runs x 2 metrics
    assert set(result.results.columns) >= {"alpha", "seed", "metric", "value", "text"}
    text = result.results[result.results["metric"] == "kind"]
    assert text["value"].isna().all() and set(text["text"]) == {'"tiny"'}
    agg = result.aggregate.set_index(["alpha", "metric"])
    assert list(result.aggregate["metric"]) == ["m", "m"]  # the text metric is not aggregated
    for alpha in (1, 2):
        values = np.array([10 * alpha + s ** 2 for s in range(3)], dtype=float)
        row = agg.loc[(alpha, "m")]
        assert row["n"] == 3 and row["n_missing"] == 0
        assert row["mean"] == pytest.approx(values.sum() / 3)
        assert row["std"] == pytest.approx(math.sqrt(((values - values.mean()) ** 2).sum() / 2))
        assert (row["min"], row["max"]) == (values.min(), values.max())
        ci = stats.bootstrap((values,), np.mean, n_resamples=9999, confidence_level=0.95, method="percentile",
                             rng=np.random.default_rng(0)).confidence_interval
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert values.min() <= row["ci_low"] < row["mean"] < row["ci_high"] <= values.max()
    on_disk = pd.read_csv(baseline / "aggregate.csv").fillna({"note": ""})
    pd.testing.assert_frame_equal(on_disk, result.aggregate, check_dtype=False)
    tidy = pd.read_csv(baseline / "results.csv")
    assert len(tidy) == 12 and {"id", "alpha", "seed"} <= set(tidy.columns) and "marker" not in tidy.columns  # not injected
    index = (baseline / "index.html").read_text()
    assert index.count("data:image/png;base64,") == 1 and "aggregate.csv" in index
    assert all(f'href="runs/{i}/notebook.ipynb"' in index for i in result.runs["id"])


def test_aggregate_with_one_seed_has_no_interval_and_says_so():
    results = pd.DataFrame({
        "id": ["a", "b", "c"], "notebook": ["n"] * 3, "alpha": [1, 1, 2], "status": ["ok"] * 3,
        "metric": ["m"] * 3, "value": [1.0, 3.0, 5.0], "text": [None] * 3,
    })
    agg = aggregate(results, ["alpha"]).set_index("alpha")
    assert agg.loc[1, "n"] == 2 and agg.loc[1, "std"] == pytest.approx(math.sqrt(2))
    assert agg.loc[2, "n"] == 1 and agg.loc[2, "mean"] == 5.0 and agg.loc[2, "note"] == ONE_SEED
    assert math.isnan(agg.loc[2, "std"]) and math.isnan(agg.loc[2, "ci_low"]) and math.isnan(agg.loc[2, "ci_high"])
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_kill_the_runner_and_resume(tmp_path, baseline):
    """SIGKILL the runner after two runs: they stay byte-for-byte, the rest run once, same aggregate."""
    marker = tmp_path / "markers.txt"
    nb = slow_notebook(tmp_path / "kill", marker)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "recnb", "sweep", str(nb), "-p", "alpha", "1", "2", "--seeds", "0-2", "--jobs", "1",
            "--no-html", "--no-progress", "--out", str(out), "--name", "k"]
    with open(tmp_path / "runner.log", "w") as log:
        runner = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while len(list(out.glob("k/runs/*/run.json"))) < 2:
            assert runner.poll() is None, (tmp_path / "runner.log").read_text()
            assert time.monotonic() < deadline, "the first two runs did not finish in 120 s"
            time.sleep(0.05)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    time.sleep(2.5)  # the worker dies with the runner; its kernel notices within a second
    sweep_dir = out / "k"
    kept = {p: p.read_bytes() for run in sweep_dir.glob("runs/*/run.json") for p in run.parent.iterdir()}
    finished = {p.parent.name for p in kept}
    assert 2 <= len(finished) < 6
    assert not (sweep_dir / "aggregate.csv").exists()  # killed: nothing after the runs was written
    assert load_sweep(sweep_dir).runs["status"].value_counts().to_dict() == {"pending": 6 - len(finished), "ok": len(finished)}

    assert main(["sweep", "--resume", str(sweep_dir), "--jobs", "2", "--no-progress"]) == 0
    assert {p: p.read_bytes() for p in kept} == kept  # finished runs untouched, byte for byte
    lines = marker.read_text().splitlines()
    assert collections.Counter(lines) == collections.Counter(f"{a} {s}" for a in (1, 2) for s in range(3))  # each once
    assert (sweep_dir / "aggregate.csv").read_text() == (baseline / "aggregate.csv").read_text()
    # a second resume finds nothing to do and changes nothing
    before = {p: p.read_bytes() for p in sweep_dir.glob("runs/*/*")}
    assert main(["sweep", "--resume", str(sweep_dir), "--no-progress"]) == 0
    assert {p: p.read_bytes() for p in sweep_dir.glob("runs/*/*")} == before
    assert len(marker.read_text().splitlines()) == 6


def test_a_failing_run_never_stops_the_others(write_notebook, tmp_path, capsys):
    nb = write_notebook(
        "flaky.ipynb", "seed = 0\nalpha = 0.5",
        "from recnb.report import record\nrecord('twice', 2 * alpha + seed)",
        "if alpha == 2:\n    raise ValueError(f'no good at alpha={alpha}')\nrecord('after', seed)",
    )
    code = main(["sweep", str(nb), "-p", "alpha", "1", "2", "--seeds", "0", "1", "--jobs", "2", "--no-progress",
                 "--out", str(tmp_path), "--name", "f"])
    assert code == 1
    result = load_sweep(tmp_path / "f")
    status = dict(zip(zip(result.runs["alpha"], result.runs["seed"]), result.runs["status"]))
    assert status == {(1.0, 0): "ok", (1.0, 1): "ok", (2.0, 0): "failed", (2.0, 1): "failed"}
    failed = json.loads((tmp_path / "f" / "runs" / result.failed["id"].iloc[0] / "run.json").read_text())
    assert failed["error"]["ename"] == "ValueError" and failed["error"]["evalue"] == "no good at alpha=2.0"
    assert failed["error"]["cell"] == 4 and "raise ValueError" in failed["error"]["source"]
    assert "ValueError" in failed["error"]["traceback"]
    assert failed["metrics"] == {"twice": 4.0}  # recorded before the error: kept in run.json and results
    assert failed["parameters"] == {"alpha": 2.0, "seed": 0} and failed["duration_s"] > 0
    agg = result.aggregate
    assert set(zip(agg["alpha"], agg["metric"])) == {(1.0, "twice"), (1.0, "after")}  # ok runs only
    assert agg.set_index("metric").loc["twice", "mean"] == pytest.approx(2.5)
    index = (tmp_path / "f" / "index.html").read_text()
    assert index.index("2 runs failed") < index.index('id="aggregate"')
    assert "no good at alpha=2.0" in index and "raise ValueError" in index
    for run in result.runs["id"]:
        assert f'href="runs/{run}/notebook.html"' in index and (tmp_path / "f" / "runs" / run / "notebook.html").exists()
    assert (tmp_path / "f" / "_static" / "mathjax" / "MathJax.js").exists()
    err = capsys.readouterr().err
    assert "FAILED" in err and "no good at alpha=2.0" in err and "2 of 4 runs did not finish ok" in err


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["-p", "beta", "1", "2"], "unknown parameter 'beta'"),
        (["-p", "alpha", "0.5", "oops"], "parameter 'alpha': expected float"),
        (["-p", "alpha", "1", "--seeds", "0", "--profile", "nope"], "unknown profile 'nope'"),
    ],
)
def test_bad_parameters_start_nothing(words, message, write_notebook, tmp_path, capsys):
    nb = write_notebook("p.ipynb", "seed = 0\nalpha = 0.5", "x = 1")
    code = main(["sweep", str(nb), *words, "--out", str(tmp_path / "out"), "--name", "bad"])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    if "profile" not in message:
        assert "p.ipynb" in err and "It declares: seed: int = 0; alpha: float = 0.5" in err and "Nothing was started" in err
    assert not (tmp_path / "out").exists()


def test_seed_for_a_notebook_without_one_and_api_errors(write_notebook, tmp_path):
    nb = write_notebook("noseed.ipynb", "alpha = 0.5", "x = 1")
    with pytest.raises(ParameterError, match="unknown parameter 'seed'.*seeds are given to the notebook's `seed`"):
        sweep(nb, {"alpha": [1]}, seeds=[0, 1], out_dir=tmp_path)
    with pytest.raises(ParameterError, match="expected float"):
        sweep(nb, {"alpha": [1, "x"]}, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == [nb]


def test_plan_uses_the_profile_and_checks_a_course_notebook():
    nb = NOTEBOOKS_DIR / "02_sigmoid_loss.ipynb"
    runs = plan_runs([nb], {"n_negatives": [1, 4]}, [0, 1], profile="smoke")
    assert [(r["setting"]["n_negatives"], r["seed"]) for r in runs] == [(1, 0), (1, 1), (4, 0), (4, 1)]
    assert all(r["parameters"]["n_users"] == 200 and r["parameters"]["max_epochs"] == 15 for r in runs)
    assert runs == plan_runs([nb], {"n_negatives": [1, 4]}, [0, 1], profile="smoke")  # ids are deterministic
    assert len({r["id"] for r in runs}) == 4 and runs[0]["id"].startswith("02_sigmoid_loss-n_negatives=1-seed=0-")
    with pytest.raises(ParameterError, match="02_sigmoid_loss.ipynb: unknown parameter 'n_negative'"):
        plan_runs([nb], {"n_negative": [1]}, [0], profile="smoke")


def test_seeds_grid_file_and_run_ids(tmp_path):
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds(["0-2,7", "9"]) == [0, 1, 2, 7, 9]
    assert parse_seeds([3, 1]) == [3, 1] and parse_seeds(None) is None
    for bad in ("4-1", "a", "1,1"):
        with pytest.raises(ParameterError):
            parse_seeds(bad)
    keyed = tmp_path / "g.yaml"
    keyed.write_text("grid:\n  alpha: [0.0, 0.5]\n  k: 10\nparameters:\n  n_users: 200\nseeds: 0-2\n")
    assert read_grid_file(keyed) == ({"alpha": [0.0, 0.5], "k": [10]}, {"n_users": 200}, [0, 1, 2])
    flat = tmp_path / "flat.yaml"
    flat.write_text("alpha: [0.0, 0.5]\nlambdas: [[0.1, 0.2], [0.3]]\nn_users: 200\n")
    assert read_grid_file(flat) == ({"alpha": [0.0, 0.5], "lambdas": [[0.1, 0.2], [0.3]], "n_users": [200]}, {}, None)
    a = run_id("nb", {"alpha": 0.5}, 1, {"alpha": 0.5, "seed": 1})
    assert a == run_id("nb", {"alpha": 0.5}, 1, {"seed": 1, "alpha": 0.5})
    assert a != run_id("nb", {"alpha": 0.5}, 1, {"alpha": 0.5, "seed": 1, "n": 2})
    assert a.startswith("nb-alpha=0.5-seed=1-")
