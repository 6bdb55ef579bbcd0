"""A headless Chromium for the browser tests: the system's, driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from recnb.report.browser import BrowserUnavailable, chromium


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
