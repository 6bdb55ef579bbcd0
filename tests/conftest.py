"""Shared fixtures: small notebooks the runner tests write themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from recnb.report.runner import DEFAULT_KERNEL


@pytest.fixture
def write_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Write a notebook with a tagged ``parameters`` cell followed by ``cells``; returns its path."""

    def write(name: str, parameters: str, *cells: str) -> Path:
        nb = new_notebook()
        first = new_code_cell(parameters)
        first.metadata["tags"] = ["parameters"]
        nb.cells = [first, *(new_code_cell(c) for c in cells)]
        nb.metadata["kernelspec"] = {"name": DEFAULT_KERNEL, "display_name": "Python (recnb)", "language": "python"}
        path = tmp_path / name
        nbformat.write(nb, str(path))
        return path

    return write
