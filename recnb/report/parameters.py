"""Notebook parameters: what a notebook declares, profiles of overrides, and checking both.

papermill only *warns* when it is given a parameter the notebook does not declare, and never
checks types; :func:`check_parameters` does both before anything runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import papermill
import yaml

ALL = "*"  # the profile key whose parameters apply to every notebook


class ParameterError(ValueError):
    """A parameter a notebook does not declare, or a value of the wrong type."""


@dataclass(frozen=True)
class Declared:
    """One parameter declared in a notebook's ``parameters`` cell."""

    name: str
    type: type | None  # None: any value (declared as None, or a type we cannot check)
    default: str  # the source text of the default

    def describe(self) -> str:
        kind = self.type.__name__ if self.type else "any"
        return f"{self.name}: {kind} = {self.default}"


_TYPES: dict[str, type] = {t.__name__: t for t in (int, float, str, bool, list, dict, tuple)}


def declared_parameters(notebook: str | Path) -> dict[str, Declared]:
    """The parameters ``notebook`` declares, with the type of their annotation or default value.

    Raises :class:`ParameterError` if the notebook has no cell tagged ``parameters``.
    """
    found = papermill.inspect_notebook(str(notebook))
    if not found and not _has_parameters_cell(Path(notebook)):
        raise ParameterError(
            f"{Path(notebook).name} has no code cell tagged 'parameters': tag the cell that sets its "
            "defaults (JupyterLab: Property Inspector -> Cell Tags) so papermill can inject values."
        )
    declared = {}
    for name, info in found.items():
        kind = _TYPES.get(info["inferred_type_name"])
        if kind is None:
            try:
                value = ast.literal_eval(info["default"])
            except (ValueError, SyntaxError):
                value = None
            kind = None if value is None else type(value)
        declared[name] = Declared(name, kind, info["default"])
    return declared


def _has_parameters_cell(path: Path) -> bool:
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def coerce(declared: Declared, value: Any, raw: str | None = None) -> Any:
    """``value`` as the declared type, or :class:`ParameterError`.

    ints are accepted for floats; a command-line text that YAML read as a number is accepted for
    a str parameter (``raw`` is that text). bool is never taken for int or float.
    """
    kind = declared.type
    if kind is None or (isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and raw is not None:
        return raw
    if kind is tuple and isinstance(value, list):
        return value
    raise ParameterError(
        f"expected {kind.__name__} (declared as `{declared.describe()}`), got {type(value).__name__} {value!r}"
    )


def check_parameters(notebook: str | Path, parameters: dict[str, Any], raw: dict[str, str] | None = None) -> dict[str, Any]:
    """Check every name and type in ``parameters`` against ``notebook``'s declared ones.

    Returns the coerced parameters; raises :class:`ParameterError` with one message naming the
    notebook, every bad parameter and the declared ones.
    """
    declared = declared_parameters(notebook)
    raw = raw or {}
    problems, checked = [], {}
    for name, value in parameters.items():
        if name not in declared:
            problems.append(f"unknown parameter {name!r}")
            continue
        try:
            checked[name] = coerce(declared[name], value, raw.get(name))
        except ParameterError as exc:
            problems.append(f"parameter {name!r}: {exc}")
    if problems:
        listing = "; ".join(d.describe() for d in declared.values()) or "none"
        raise ParameterError(
            f"{Path(notebook).name}: " + "; ".join(problems) + f". It declares: {listing}. "
            "Fix the name or value (-p NAME VALUE, -f FILE or the profile) and run again."
        )
    return checked


def profiles_path() -> Path:
    """The one file that holds every profile: ``recnb/report/profiles.yaml``."""
    return Path(str(resources.files("recnb.report") / "profiles.yaml"))


def load_profiles(path: str | Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """All profiles: name -> notebook stem (or ``"*"``) -> parameters."""
    data = yaml.safe_load(Path(path or profiles_path()).read_text(encoding="utf-8")) or {}
    return {name: (body or {}) for name, body in data.items()}


def profile_parameters(profile: str, stem: str, profiles: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The overrides ``profile`` gives the notebook ``stem``: its ``"*"`` entry, then its own."""
    profiles = load_profiles() if profiles is None else profiles
    if profile not in profiles:
        raise ParameterError(
            f"unknown profile {profile!r}: the profiles in {profiles_path()} are {', '.join(sorted(profiles))}. "
            "Pick one of them, or add yours to that file."
        )
    body = profiles[profile]
    return {**(body.get(ALL) or {}), **(body.get(stem) or {})}


def split_parameter_file(data: dict[str, Any], stems: list[str]) -> dict[str, dict[str, Any]]:
    """Read a ``-f`` YAML file: per notebook (keys are notebook stems or ``"*"``) or flat (all)."""
    if data and all(key == ALL or key in stems for key in data) and all(isinstance(v, dict) for v in data.values()):
        return {stem: {**(data.get(ALL) or {}), **(data.get(stem) or {})} for stem in stems}
    return {stem: dict(data) for stem in stems}
