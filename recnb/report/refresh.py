"""Re-execute committed notebooks in place with their defaults, minus per-run metadata.

Outputs and execution counts stay (readers see results without running anything, and nbval only
compares cells that have an execution count); papermill's timings and paths, which change on every
run, go. A notebook that fails is left untouched and the error is raised.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from recnb.report.files import atomic_write
from recnb.report.runner import DEFAULT_KERNEL, execute


def strip_run_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop papermill's per-cell and notebook timing metadata (in place); returns ``nb``."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return nb


def refresh(notebook: Path, kernel_name: str = DEFAULT_KERNEL) -> None:
    """Execute ``notebook`` top to bottom with its defaults and store the result in place."""
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / notebook.name
        execute(notebook, executed, {}, kernel_name)
        nb = strip_run_metadata(nbformat.read(str(executed), as_version=4))
    atomic_write(notebook, nbformat.writes(nb) + "\n")
