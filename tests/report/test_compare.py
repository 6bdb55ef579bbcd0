"""``recnb compare`` on reports and sweeps written by hand (the files the runners write; nothing runs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from recnb.cli import main
from recnb.report import load_sweep
from recnb.report.compare import compare, difference_interval, parse_tolerance
from recnb.report.runner import ReportError
from recnb.report.sweeps import run_id


def write_report(folder: Path, metrics: dict[str, dict[str, object]], status: str = "ok") -> Path:
    folder.mkdir(parents=True)
    notebooks = [{"notebook": f"{nb}.ipynb", "status": status, "parameters": {"seed": 0}, "metrics": m}
                 for nb, m in metrics.items()]
    (folder / "summary.json").write_text(json.dumps({"profile": "smoke", "notebooks": notebooks}))
    return folder


def write_sweep(folder: Path, m: dict[tuple[float, int], float], extra: dict[str, object] | None = None) -> Path:
    """A sweep of notebook ``nb`` over alpha x seeds whose runs recorded ``m`` (and ``extra``)."""
    runs = []
    for (alpha, seed), value in m.items():
        params = {"alpha": alpha, "seed": seed}
        rid = run_id("nb", {"alpha": alpha}, seed, params)
        runs.append({"id": rid, "notebook": "nb.ipynb", "stem": "nb", "path": "/x/nb.ipynb",
                     "setting": {"alpha": alpha}, "seed": seed, "parameters": params})
        record = {"id": rid, "status": "ok", "duration_s": 1.0, "metrics": {"m": value, **(extra or {})},
                  "error": None, "output": None, "html": None}
        (folder / "runs" / rid).mkdir(parents=True)
        (folder / "runs" / rid / "run.json").write_text(json.dumps(record))
    alphas = sorted({a for a, _ in m})
    plan = {"name": folder.name, "grid": {"alpha": alphas}, "seeds": sorted({s for _, s in m}), "runs": runs,
            "notebooks": [], "profile": "smoke", "kernel": "recnb"}
    (folder / "sweep.json").write_text(json.dumps(plan))
    return folder


def test_reports_side_by_side_exit_status_and_one_sided_metrics(tmp_path, capsys):
    a = write_report(tmp_path / "a", {"01": {"ndcg": 0.40, "recall": 0.30, "gone": 1.0, "label": "x"}})
    b = write_report(tmp_path / "b", {"01": {"ndcg": 0.41, "recall": 0.30, "new": 2.0, "label": "x"}})
    table = compare(a, b, tolerance=0.02).set_index("metric")
    assert table.loc["ndcg", "diff"] == pytest.approx(0.01) and table.loc["ndcg", "status"] == "within"
    assert table.loc["recall", "status"] == "same" and table.loc["label", "status"] == "same"
    assert table.loc["gone", "status"] == "only in A" and table.loc["gone", "a"] == 1.0 and math.isnan(table.loc["gone", "b"])
    assert table.loc["new", "status"] == "only in B" and table.loc["new", "b"] == 2.0
    assert table["outside_seeds"].isna().all()  # one seed a side: no interval

    assert main(["compare", str(a), str(b), "--tolerance", "0.02"]) == 1  # "gone" is missing from B
    out = capsys.readouterr().out
    assert "only in A" in out and "only in B" in out and "gone" in out and "new" in out
    assert main(["compare", str(a), str(b), "--tolerance", "0.001"]) == 1
    assert "moved" in capsys.readouterr().out

    c = write_report(tmp_path / "c", {"01": {"ndcg": 0.40, "recall": 0.30, "gone": 1.0, "label": "x", "new": 5}})
    assert main(["compare", str(a), str(c / "summary.json")]) == 0  # a metric new in B is listed, not a failure
    assert main(["compare", str(a), str(c), "-t", "0"]) == 0
    d = write_report(tmp_path / "d", {"01": {"ndcg": 0.44, "recall": 0.30, "gone": 1.0, "label": "y"}})
    table = compare(a, d, tolerance="10%").set_index("metric")
    assert table.loc["ndcg", "status"] == "within" and table.loc["label", "status"] == "changed"
    assert main(["compare", str(a), str(d), "-t", "5%"]) == 1


def test_sweeps_interval_of_the_difference_and_beyond_seeds(tmp_path):
    seeds = range(4)
    base = {(a, s): 10 * a + s for a in (1.0, 2.0) for s in seeds}
    shifted = {(a, s): v + (0.5 if a == 2.0 else 0.0) for (a, s), v in base.items()}
    noisy = {(a, s): v + (0.3 if s % 2 else -0.3) for (a, s), v in base.items()}
    a = write_sweep(tmp_path / "a", base, {"kind": "tiny"})
    assert list(load_sweep(a).aggregate["n"]) == [4, 4]

    same = compare(a, a)
    assert set(same["status"]) == {"same"} and same.loc[same["metric"] == "m", "outside_seeds"].tolist() == [False, False]
    table = compare(a, write_sweep(tmp_path / "b", shifted, {"kind": "tiny"}), tolerance=0.1).set_index(["setting", "metric"])
    assert table.loc[("alpha=2.0", "m"), "status"] == "moved" and table.loc[("alpha=2.0", "m"), "diff"] == pytest.approx(0.5)
    assert table.loc[("alpha=2.0", "m"), "outside_seeds"]  # the same shift at every seed: a paired interval of [0.5, 0.5]
    assert table.loc[("alpha=1.0", "m"), "status"] == "same"
    noisy_table = compare(a, write_sweep(tmp_path / "c", noisy), tolerance=0.1).set_index(["setting", "metric"])
    row = noisy_table.loc[("alpha=1.0", "m")]
    assert row["diff"] == pytest.approx(0.0) and row["outside_seeds"] is False  # +-0.3 by seed: inside seed noise
    assert noisy_table.loc[("alpha=1.0", "kind"), "status"] == "only in A"
    assert main(["compare", str(a), str(tmp_path / "b"), "--tolerance", "1"]) == 0
    assert main(["compare", str(a), str(tmp_path / "b"), "--tolerance", "0.1"]) == 1


def test_difference_interval_against_scipy():
    a, b = [1.0, 2.0, 4.0], [2.0, 2.5, 6.0]
    paired = difference_interval(a, b, [0, 1, 2], [0, 1, 2])
    ci = stats.bootstrap((np.subtract(b, a),), np.mean, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert paired == (pytest.approx(ci.low), pytest.approx(ci.high))
    unpaired = difference_interval(a, b, [0, 1, 2], [5, 6, 7])
    ci = stats.bootstrap((np.array(a), np.array(b)), lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis),
                         method="percentile", rng=np.random.default_rng(0)).confidence_interval
    assert unpaired == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert all(math.isnan(v) for v in difference_interval([1.0], [2.0, 3.0]))


def test_tolerance_and_bad_paths(tmp_path, capsys):
    assert parse_tolerance("0.01") == (0.01, False) and parse_tolerance("2%") == (0.02, True)
    for bad in ("x", "-1"):
        with pytest.raises(ReportError):
            parse_tolerance(bad)
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "neither a report (no summary.json) nor a sweep" in capsys.readouterr().err
