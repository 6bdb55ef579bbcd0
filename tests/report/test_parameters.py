from __future__ import annotations

import pytest

from recnb.report.parameters import (
    ParameterError,
    check_parameters,
    declared_parameters,
    load_profiles,
    profile_parameters,
    split_parameter_file,
)
from recnb.report.runner import NOTEBOOKS_DIR

PARAMS = "seed: int = 0\nalpha = 0.5\nlabel = 'x'\nflag = False\nsizes = [1, 2]\nanything = None"


def test_declared_types_come_from_annotation_or_default(write_notebook):
    nb = write_notebook("p.ipynb", PARAMS)
    declared = declared_parameters(nb)
    assert {n: d.type for n, d in declared.items()} == {
        "seed": int, "alpha": float, "label": str, "flag": bool, "sizes": list, "anything": None,
    }


def test_values_are_coerced_to_declared_types(write_notebook):
    nb = write_notebook("p.ipynb", PARAMS)
    checked = check_parameters(nb, {"alpha": 1, "label": 12, "anything": {"a": 1}}, raw={"label": "12"})
    assert checked == {"alpha": 1.0, "label": "12", "anything": {"a": 1}}
    assert isinstance(checked["alpha"], float)


def test_every_problem_is_named_with_the_declared_parameters(write_notebook):
    nb = write_notebook("p.ipynb", PARAMS)
    with pytest.raises(ParameterError) as info:
        check_parameters(nb, {"alpah": 1, "seed": True, "flag": "yes"})
    message = str(info.value)
    assert message.startswith("p.ipynb: ")
    for fragment in ("unknown parameter 'alpah'", "parameter 'seed': expected int", "parameter 'flag': expected bool",
                     "seed: int = 0", "alpha: float = 0.5"):
        assert fragment in message


def test_notebook_without_parameters_cell_is_rejected(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("x = 1")])
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(ParameterError, match="no code cell tagged 'parameters'"):
        declared_parameters(path)


def test_profile_parameters_merge_star_and_own_entry():
    profiles = {"smoke": {"*": {"seed": 1, "progress": False}, "nb": {"seed": 2, "n": 3}}}
    assert profile_parameters("smoke", "nb", profiles) == {"seed": 2, "progress": False, "n": 3}
    assert profile_parameters("smoke", "other", profiles) == {"seed": 1, "progress": False}
    with pytest.raises(ParameterError, match="unknown profile 'fast'.*smoke"):
        profile_parameters("fast", "nb", profiles)


def test_parameter_file_flat_or_per_notebook():
    stems = ["01_a", "02_b"]
    assert split_parameter_file({"seed": 3}, stems) == {"01_a": {"seed": 3}, "02_b": {"seed": 3}}
    per = split_parameter_file({"*": {"seed": 3}, "02_b": {"k": 5}}, stems)
    assert per == {"01_a": {"seed": 3}, "02_b": {"seed": 3, "k": 5}}


def test_shipped_profiles_name_only_declared_parameters():
    """Every override in profiles.yaml must be a parameter its notebook declares, of its type."""
    profiles = load_profiles()
    assert {"default", "smoke"} <= set(profiles)
    notebooks = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    for profile in profiles:
        for nb in notebooks:
            check_parameters(nb, profile_parameters(profile, nb.stem, profiles))
