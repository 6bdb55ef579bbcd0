"""The runner on small notebooks written by the tests, executed by the real papermill."""

from __future__ import annotations

import json

import nbformat
import pytest

from recnb.cli import main
from recnb.report.refresh import refresh, strip_run_metadata
from recnb.report.runner import ReportError, find_notebooks

PARAMS = "seed: int = 0\nalpha = 0.5\nlabel = 'x'"
RECORDS = "from recnb.report import record\nrecord('twice_alpha', 2 * alpha)\nrecord('label', label)\nrecord('seed', seed)"


def test_report_injects_parameters_isolates_a_failure_and_summarises(write_notebook, tmp_path, capsys):
    good = write_notebook("01_good.ipynb", PARAMS, RECORDS)
    bad = write_notebook("02_bad.ipynb", PARAMS, "x = 1", "raise ValueError('boom at ' + label)")
    code = main(["report", str(good), str(bad), "-p", "alpha", "2", "-p", "label", "12",
                 "--out", str(tmp_path / "out"), "--name", "run"])
    assert code == 1
    run = tmp_path / "out" / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "01_good.html", "01_good.ipynb", "02_bad.html", "02_bad.ipynb", "_static", "index.html", "summary.json", "summary.md"]
    summary = json.loads((run / "summary.json").read_text())
    first, second = summary["notebooks"]
    assert first["status"] == "ok"
    assert first["parameters"] == {"alpha": 2.0, "label": "12"}
    assert first["metrics"] == {"twice_alpha": 4.0, "label": "12", "seed": 0}
    assert second["status"] == "failed"
    assert second["error"]["ename"] == "ValueError" and second["error"]["evalue"] == "boom at 12"
    assert second["error"]["cell"] == 4  # execution count: parameters, injected parameters, x = 1, raise
    assert summary["environment"]["torch"].startswith("2.13.0")
    assert summary["ok"] is False
    # the executed notebook with the error cell is kept
    executed = nbformat.read(str(run / "02_bad.ipynb"), as_version=4)
    assert any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))
    md = (run / "summary.md").read_text()
    assert "| 01_good.ipynb | ok |" in md and "| twice_alpha | 4 |" in md and "boom at 12" in md
    out = capsys.readouterr()
    assert f"report: {run / 'summary.md'}" in out.out
    assert "[1/2] 01_good.ipynb" in out.err and "[2/2] 02_bad.ipynb" in out.err


def test_unknown_parameter_rejects_that_notebook_only(write_notebook, tmp_path, capsys):
    ok = write_notebook("a.ipynb", PARAMS + "\nextra = 1", RECORDS)
    other = write_notebook("b.ipynb", PARAMS, RECORDS)
    code = main(["report", str(ok), str(other), "-p", "extra", "3", "--out", str(tmp_path), "--name", "r", "--no-html"])
    assert code == 1
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    status = {r["notebook"]: r["status"] for r in summary["notebooks"]}
    assert status == {"a.ipynb": "ok", "b.ipynb": "rejected"}
    rejected = summary["notebooks"][1]["error"]["evalue"]
    assert "b.ipynb" in rejected and "unknown parameter 'extra'" in rejected and "alpha: float = 0.5" in rejected
    assert not (tmp_path / "r" / "b.ipynb").exists()
    assert "rejected b.ipynb" in capsys.readouterr().err


def test_parameters_file_and_profile(write_notebook, tmp_path):
    nb = write_notebook("c.ipynb", PARAMS, RECORDS)
    params = tmp_path / "p.yaml"
    params.write_text("alpha: 0.25\nlabel: from-file\n")
    assert main(["report", str(nb), "-f", str(params), "--out", str(tmp_path), "--name", "f", "--no-html"]) == 0
    metrics = json.loads((tmp_path / "f" / "summary.json").read_text())["notebooks"][0]["metrics"]
    assert metrics == {"twice_alpha": 0.5, "label": "from-file", "seed": 0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "no-such-notebook"], "no notebook matches 'no-such-notebook'"),
        (["report", "NB", "--kernel", "no-such-kernel"], "kernel 'no-such-kernel' is not installed"),
        (["report", "NB", "--profile", "no-such-profile"], "unknown profile 'no-such-profile'"),
    ],
)
def test_usage_errors_exit_2_with_what_to_do(argv, message, write_notebook, capsys, tmp_path):
    nb = write_notebook("u.ipynb", PARAMS, RECORDS)
    argv = [str(nb) if a == "NB" else a for a in argv]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("-p NAME VALUE", "-f FILE", "--profile", "--out", "--name", "--kernel", "--no-html", "smoke"):
        assert option in text


def test_find_notebooks_by_number_stem_and_path(tmp_path):
    for name in ("01_one.ipynb", "02_two.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_notebooks(None, tmp_path)] == ["01_one.ipynb", "02_two.ipynb"]
    assert [p.name for p in find_notebooks(["02", "01_one"], tmp_path)] == ["02_two.ipynb", "01_one.ipynb"]
    with pytest.raises(ReportError, match="01_one, 02_two"):
        find_notebooks(["03"], tmp_path)


def test_refresh_keeps_outputs_and_counts_and_strips_timings(write_notebook):
    nb = write_notebook("r.ipynb", PARAMS, "print(alpha * 2)")
    refresh(nb)
    stored = nbformat.read(str(nb), as_version=4)
    assert "papermill" not in stored.metadata
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2]
    assert code[1].outputs[0]["text"] == "1.0\n"
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in stored.cells)
    assert strip_run_metadata(stored) is stored


def test_refresh_leaves_a_failing_notebook_unchanged(write_notebook):
    nb = write_notebook("f.ipynb", PARAMS, "raise RuntimeError('nope')")
    before = nb.read_text()
    with pytest.raises(Exception, match="nope"):
        refresh(nb)
    assert nb.read_text() == before
