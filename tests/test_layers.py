"""The package's layers, checked on its source: imports only go down, never in a cycle, never hidden.

recnb is organised bottom up (README, "The package"): each top-level package below may import
from its own layer and the layers beneath it, never from one above. There is no exceptions list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "recnb"

#: bottom up; a module may import from its own layer and every layer before it. ``search`` sits
#: above ``models`` (dense retrieval encodes with ``models.text_encoder``, personalised search and
#: ANN retrieve-then-rank use ``models.base``) and below ``evaluation``, which may evaluate it.
LAYERS = ["recnb", "math", "data", "training", "models", "search", "evaluation", "policies", "studies", "report", "cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(module: str) -> int:
    """The layer of a dotted ``recnb`` module name: its top-level package (``recnb`` alone is 0)."""
    parts = module.split(".")
    top = "recnb" if len(parts) == 1 else parts[1]
    if top == "__main__":
        top = "cli"
    if top not in LAYERS:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS in {Path(__file__).name}")
    return LAYERS.index(top)


def recnb_imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, ast.stmt]]:
    """Every ``recnb`` module that ``tree`` imports, with the statement (``from a import b`` is
    ``a.b`` when ``a.b`` is a module of the package, else ``a``)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names if alias.name.split(".")[0] == "recnb"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            if base.split(".")[0] != "recnb":
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.append((target if target in MODULES else base, node))
    return out


SOURCES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
MODULES = set(SOURCES)
TREES = {m: ast.parse(p.read_text(), filename=str(p)) for m, p in SOURCES.items()}


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, tree in TREES.items():
        for target, _ in recnb_imports(tree, m, SOURCES[m].name == "__init__.py"):
            if target != m:
                graph[m].add(target)
    return graph


def test_every_module_has_a_layer():
    for m in MODULES:
        layer(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down(module):
    """A module imports only from its own layer or below (``recnb.models`` never from ``recnb.evaluation``)."""
    tree = TREES[module]
    upward = [f"line {node.lineno}: {target} ({LAYERS[layer(target)]})"
              for target, node in recnb_imports(tree, module, SOURCES[module].name == "__init__.py")
              if layer(target) > layer(module)]
    assert not upward, f"{module} (layer {LAYERS[layer(module)]}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_hidden_in_a_function(module):
    """recnb modules are imported at the top of a module, where the layer rule can see them."""
    hidden = []
    for scope in ast.walk(TREES[module]):
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for node in ast.walk(scope):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                        t for t, _ in recnb_imports(node, module, SOURCES[module].name == "__init__.py")):
                    hidden.append(f"line {node.lineno} in {scope.name}")
    assert not hidden, f"{module} imports recnb inside a function or class: {sorted(set(hidden))}"


def test_no_import_cycles():
    """The module graph is acyclic (a package's ``__init__`` re-exporting its own modules is no cycle)."""
    graph = edges()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n not in graph:
                continue
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_catches_an_upward_import_and_a_cycle(tmp_path):
    """The rule itself can fail: an upward import and a two-module cycle, on made-up sources."""
    tree = ast.parse("from recnb.evaluation import evaluate\n")
    targets = [t for t, _ in recnb_imports(tree, "recnb.models.base", False)]
    assert targets == ["recnb.evaluation"] and layer(targets[0]) > layer("recnb.models.base")
    hidden = ast.parse("def f():\n    from recnb.math.ranking import rank\n")
    assert recnb_imports(hidden.body[0], "recnb.data.splits", False)
