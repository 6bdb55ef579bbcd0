"""Open pages from disk in headless Chromium: what a reader sees, and what the page asked for.

Drives Debian's system Chromium (``/usr/bin/chromium``, or the path in ``$RECNB_CHROMIUM``) with
Playwright for Python; Playwright's own browser downloads are never used. Every request that is not
``file:``, ``data:``, ``blob:`` or ``about:`` is recorded and aborted, so a page that would need the
network shows up in :attr:`PageCheck.requests` instead of loading. Used by the browser tests and by
``recnb report --screenshots``.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
INSTALL_HINT = "install it with `make browser` (runs `apt-get install -y chromium` as root or with sudo)"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# raw TeX left in the text: $$, \( \[, or $...$ around a TeX command
_RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing; the message says how to install it."""


def chromium_path() -> Path:
    """Where the system Chromium is expected (``$RECNB_CHROMIUM`` or ``/usr/bin/chromium``)."""
    return Path(os.environ.get("RECNB_CHROMIUM") or "/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium ``Browser`` (Playwright), closed on exit.

    Raises :class:`BrowserUnavailable` naming the install command if Playwright or Chromium is missing.
    """
    executable = chromium_path()
    if not executable.exists():
        raise BrowserUnavailable(f"no Chromium at {executable}: {INSTALL_HINT}, or set RECNB_CHROMIUM=/path/to/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable("Playwright for Python is missing: `pip install -e '.[test]'` (or `make setup`)") from None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageCheck:
    """What one page did when opened from disk."""

    path: Path
    requests: list[str] = field(default_factory=list)  # non-local requests (aborted)
    console_errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    internal_links: int = 0
    broken_links: list[str] = field(default_factory=list)
    math: int = 0  # rendered formulas (MathJax output elements)
    raw_math: list[str] = field(default_factory=list)  # TeX left unrendered in the visible text
    text: str = ""

    @property
    def problems(self) -> list[str]:
        """Everything that is wrong with the page, one line each (empty when it is fine)."""
        return (
            [f"network request: {u}" for u in self.requests]
            + [f"console error: {e}" for e in self.console_errors]
            + [f"image did not load: {s}" for s in self.broken_images]
            + [f"link does not resolve: {h}" for h in self.broken_links]
            + [f"raw TeX in the text: {t!r}" for t in self.raw_math]
        )


def _link_resolves(href: str, page: Path, page_ids: set[str]) -> bool:
    parts = urlsplit(href)
    target = Path(url2pathname(parts.path))
    if not target.exists():
        return False
    if target.is_dir():
        target = target / "index.html"
        if not target.exists():
            return False
    if not parts.fragment:
        return True
    anchors = {parts.fragment, unquote(parts.fragment)}  # nbconvert's heading ids are percent-encoded
    if target == page:
        return bool(anchors & page_ids)
    text = target.read_text(encoding="utf-8", errors="replace")
    return any(f'{attr}="{html.escape(a)}"' in text for a in anchors for attr in ("id", "name"))


def check_page(browser: Any, path: Path, screenshot: Path | None = None, math_timeout_s: float = 60) -> PageCheck:
    """Open ``path`` (``file://``) offline, wait for its math, and check what a reader would see.

    With ``screenshot``, also writes a PNG of the viewport (1280x900) scrolled to the first
    displayed formula, or the top of the page if it has none.
    """
    path = Path(path).resolve()
    check = PageCheck(path)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

    def outside(url: str) -> bool:
        """Record ``url`` if it would leave the machine; True if so."""
        if url.startswith(LOCAL_SCHEMES):
            return False
        if url not in check.requests:
            check.requests.append(url)
        return True

    def route(route: Any) -> None:
        route.abort() if outside(route.request.url) else route.continue_()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda r: outside(r.url))
    page.on("console", lambda m: check.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: check.console_errors.append(f"uncaught {e}"))
    page.on("requestfailed", lambda r: None if r.url in check.requests
            else check.console_errors.append(f"failed to load {r.url}: {r.failure}"))
    try:
        page.goto(path.as_uri(), wait_until="load")
        if page.evaluate("() => !!window.MathJax"):
            page.wait_for_function("() => document.documentElement.dataset.math === 'done'", timeout=math_timeout_s * 1000)
        state = page.evaluate(
            """() => ({
                images: Array.from(document.images).map(i => [i.src.startsWith("data:") ? i.src.slice(0, 80) : i.src, i.complete && i.naturalWidth > 0]),
                links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
                ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name),
                math: document.querySelectorAll('span.MathJax').length,
                text: document.body.innerText,
                prose: Array.from(document.querySelectorAll('.jp-MarkdownOutput, .recnb-prose'))
                    .map(e => e.innerText).join('\\n'),
            })"""
        )
        check.images = len(state["images"])
        check.broken_images = [src for src, ok in state["images"] if not ok]
        ids = set(state["ids"])
        internal = [h for h in state["links"] if h.startswith("file:")]
        check.internal_links = len(internal)
        check.broken_links = [h for h in internal if not _link_resolves(h, path, ids)]
        check.math = state["math"]
        check.raw_math = _RAW_MATH.findall(state["prose"])
        check.text = state["text"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            first = page.query_selector(".MathJax_Display")
            if first is not None:
                first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.screenshot(path=str(screenshot))
    finally:
        context.close()
    return check
