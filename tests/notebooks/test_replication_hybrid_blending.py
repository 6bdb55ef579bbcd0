"""Chapter 06 reads its replication over seeds (6.6) from notebooks/replications/06_hybrid_blending/:
check that the committed sweep was written by that notebook, at the parameters its `parameters` cell
names, over at least five seeds, every run finished, and that it holds every metric 6.6 reads."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from recnb.report import load_sweep
from recnb.report.aggregate import read_plan
from recnb.report.parameters import declared_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "06_hybrid_blending.ipynb"
GRID_FILE = ROOT / "notebooks" / "replications" / "06_hybrid_blending.yaml"
KEYS = ("content", "itemknn", "one_alpha", "support", "switching", "slots", "learned")


def defaults() -> dict:
    return {name: ast.literal_eval(d.default) for name, d in declared_parameters(NOTEBOOK).items()}


def test_the_grid_file_names_the_notebooks_defaults():
    fixed = yaml.safe_load(GRID_FILE.read_text(encoding="utf-8"))["parameters"]
    assert fixed == {name: value for name, value in defaults().items() if name != "seed"}


def test_the_committed_sweep_is_this_notebook_at_those_parameters_over_five_seeds():
    folder = NOTEBOOK.parent / defaults()["replications"]
    plan = read_plan(folder)
    assert [nb["name"] for nb in plan["notebooks"]] == [NOTEBOOK.name]
    assert plan["grid"] == {} and plan["profile"] == "default"
    fixed = yaml.safe_load(GRID_FILE.read_text(encoding="utf-8"))["parameters"]
    assert plan["parameters"] == fixed
    assert len(set(plan["seeds"])) >= 5
    assert sorted(run["parameters"]["seed"] for run in plan["runs"]) == sorted(plan["seeds"])
    sweep = load_sweep(folder)
    assert set(sweep.runs["status"]) == {"ok"}, sweep.failed
    aggregate = sweep.aggregate.set_index("metric")
    for key in KEYS:
        for part in ("all", "new"):
            assert aggregate.loc[f"ndcg@10_{part}_{key}", "n"] == len(plan["seeds"])
        if key not in ("content", "itemknn"):
            assert f"ndcg@10_all_{key}_minus_itemknn" in aggregate.index
            assert f"ndcg@10_new_{key}_minus_content" in aggregate.index
