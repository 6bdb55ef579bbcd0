"""Run the suite on two cores (pytest-xdist ``--dist loadgroup``) without splitting a notebook.

nbval turns each notebook cell into a test, and the cells of one notebook share one kernel, so
they must stay on one worker, in order: every item collected from an ``.ipynb`` file joins the
``xdist_group`` named after that notebook. Everything else is spread over the workers.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
