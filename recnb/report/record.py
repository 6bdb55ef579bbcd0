"""Record a notebook's headline metrics in its own output, where the report runner reads them.

``record("ndcg@10", 0.41)`` displays one output with the MIME type :data:`METRIC_MIME` (data:
``{"name": ..., "value": ...}``) next to a plain-text line for humans. The executed ``.ipynb``
therefore carries its metrics; :func:`read_metrics` reads them back (later values of the same name
win). This replaces scrapbook, which is unmaintained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import nbformat

METRIC_MIME = "application/vnd.recnb.metric+json"


def _plain(value: Any) -> Any:
    """A JSON-safe version of ``value`` (numpy and torch scalars become Python numbers)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    json.dumps(value)  # raises TypeError on anything that cannot be stored
    return value


def record(name: str, value: Any) -> Any:
    """Store metric ``name`` = ``value`` in the running notebook's output; returns ``value``.

    ``value`` must be JSON-serialisable (numbers, strings, lists, dicts); numpy/torch scalars are
    converted. Outside a notebook it prints the same line.
    """
    from IPython.display import display

    if not isinstance(name, str) or not name:
        raise ValueError(f"metric name must be a non-empty string, got {name!r}")
    plain = _plain(value)
    shown = f"{plain:.4g}" if isinstance(plain, float) else repr(plain)
    display({METRIC_MIME: {"name": name, "value": plain}, "text/plain": f"recorded {name} = {shown}"}, raw=True)
    return value


def read_metrics(notebook: str | Path | nbformat.NotebookNode) -> dict[str, Any]:
    """All metrics recorded in an executed notebook, by name, in recording order."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    metrics: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if METRIC_MIME in data:
                item = data[METRIC_MIME]
                metrics[item["name"]] = item["value"]
    return metrics
