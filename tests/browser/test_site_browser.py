"""The course site built from the committed notebooks (stored outputs), opened from disk in Chromium.

The whole course is built, because every chapter links to the next one; two chapters with display
math and figures are checked page by page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recnb.report.browser import check_page
from recnb.report.runner import find_notebooks
from recnb.report.site import build_site

COURSE = find_notebooks()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(out, COURSE)
    return out


def nav(page: Path, rel: str) -> list[str]:
    """The hrefs of the page's links with ``rel`` (prev/next), in order."""
    links = re.findall(r"<a\s[^>]*>", page.read_text())
    return [re.search(r'href="([^"]+)"', a)[1] for a in links if f'rel="{rel}"' in a]


def test_contents_lists_the_chapters_in_course_order(browser, site):
    check = check_page(browser, site / "index.html")
    assert check.problems == []
    assert check.internal_links == 2 * len(COURSE)  # each chapter's page and its .ipynb
    text = check.text
    assert text.index("Quickstart: a recommender in four formulas") < text.index("The sigmoid loss")
    assert "00_quickstart.ipynb" in text and "02_sigmoid_loss.ipynb" in text


@pytest.mark.parametrize("page", ["00_quickstart.html", "02_sigmoid_loss.html"])
def test_chapter_renders_math_figures_and_code_offline(browser, site, page):
    check = check_page(browser, site / page)
    assert check.problems == []  # no network request, console error, broken image or link, raw TeX
    assert check.math >= 5 and check.images >= 1
    assert "import" in check.text  # the code cells are there


def test_chapters_link_to_their_neighbours(site):
    pages = [site / f"{p.stem}.html" for p in COURSE]
    first, second, last = pages[0], pages[1], pages[-1]
    assert (nav(first, "prev"), nav(first, "next")) == ([], [second.name] * 2)  # top and bottom
    assert (nav(second, "prev"), nav(second, "next")) == ([first.name] * 2, [pages[2].name] * 2)
    assert (nav(last, "prev"), nav(last, "next")) == ([pages[-2].name] * 2, [])
    assert (site / "notebooks" / "02_sigmoid_loss.ipynb").read_bytes() == find_notebooks(["02"])[0].read_bytes()
