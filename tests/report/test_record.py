from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output

from recnb.report.record import METRIC_MIME, _plain, read_metrics, record


def test_plain_converts_numpy_and_torch_scalars():
    assert _plain(np.float32(0.25)) == 0.25 and type(_plain(np.float32(0.25))) is float
    assert _plain(torch.tensor(3)) == 3 and type(_plain(torch.tensor(3))) is int
    assert _plain(float("nan")) == "nan"
    with pytest.raises(TypeError):
        _plain(object())


def test_record_outside_a_notebook_prints_and_returns_value(capsys):
    assert record("ndcg@10", 0.123456) == 0.123456
    assert "recorded ndcg@10 = 0.1235" in capsys.readouterr().out
    with pytest.raises(ValueError, match="non-empty string"):
        record("", 1)


def test_read_metrics_takes_the_last_value_of_each_name(tmp_path):
    def metric(name, value):
        return new_output("display_data", data={METRIC_MIME: {"name": name, "value": value}, "text/plain": "x"})

    cell_a = new_code_cell("")
    cell_a.outputs = [metric("a", 1), new_output("stream", name="stdout", text="hello")]
    cell_b = new_code_cell("")
    cell_b.outputs = [metric("b", [1, 2]), metric("a", 2.5)]
    nb = new_notebook(cells=[cell_a, cell_b])
    path = tmp_path / "m.ipynb"
    nbformat.write(nb, str(path))
    assert read_metrics(path) == {"a": 2.5, "b": [1, 2]}
    assert json.loads(json.dumps(read_metrics(nb))) == {"a": 2.5, "b": [1, 2]}
