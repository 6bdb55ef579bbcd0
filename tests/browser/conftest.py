"""A headless Chromium for the browser tests: the system's, driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recnb.report.browser import BrowserUnavailable, chromium
from recnb.report.runner import DEFAULT_KERNEL


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the session. Missing Chromium fails under CI and skips, naming the fix, elsewhere."""
    with ExitStack() as stack:
        try:
            launched = stack.enter_context(chromium())
        except BrowserUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"the browser tests cannot run: {exc}")
            pytest.skip(f"the browser tests need Chromium: {exc}")
        yield launched


def write_course_notebook(path: Path, *cells: Any) -> Path:
    """A notebook of markdown (str starting with '#md ') and code cells, with a parameters cell first."""
    nb = new_notebook()
    params = new_code_cell("seed = 0\nalpha = 0.5")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [new_markdown_cell(c[4:]) if c.startswith("#md ") else new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": DEFAULT_KERNEL, "display_name": "Python (recnb)", "language": "python"}
    nbformat.write(nb, str(path))
    return path
