"""A tiny report run, opened from disk in Chromium: the index, a chapter with math and a figure."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recnb.report.browser import check_page
from recnb.report.runner import DEFAULT_KERNEL

CHAPTER = (
    "#md # 01 · A tiny chapter\n\nThe documented loss\n\n"
    "$$L = -\\sum_{(u,g)} \\log \\sigma\\left(\\langle \\mathbf{e}_u, \\mathbf{e}_g \\rangle\\right)$$\n\n"
    "with the inline weight $\\alpha \\in [0, 1]$ and $\\hat r_{ui} = \\frac{1}{k}\\sum_j s_{uj}$.",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\nax.plot([0, 1], [0, alpha])\nplt.show()",
    "from recnb.report import record\nrecord('twice_alpha', 2 * alpha)\nrecord('name', 'tiny')",
)


def write_course_notebook(path: Path, *cells: Any) -> Path:
    """A notebook of markdown (str starting with '#md ') and code cells, with a parameters cell first."""
    nb = new_notebook()
    params = new_code_cell("seed = 0\nalpha = 0.5")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [new_markdown_cell(c[4:]) if c.startswith("#md ") else new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": DEFAULT_KERNEL, "display_name": "Python (recnb)", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def run(browser, tmp_path_factory) -> Path:
    """01_tiny (ok) and 02_broken (fails in its third cell) through `recnb report --screenshots`.

    In a subprocess: its own Playwright cannot start inside this session's.
    """
    folder = tmp_path_factory.mktemp("notebooks")
    good = write_course_notebook(folder / "01_tiny.ipynb", *CHAPTER)
    bad = write_course_notebook(folder / "02_broken.ipynb", "x = 1", "raise ValueError('boom <b>' + str(x))")
    out = tmp_path_factory.mktemp("reports")
    done = subprocess.run(
        [sys.executable, "-c", "from recnb.cli import main; raise SystemExit(main())", "report", str(good), str(bad),
         "--out", str(out), "--name", "run", "--screenshots"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1, done.stderr  # one notebook failed
    assert "screenshot " in done.stderr and "FAILED in" in done.stderr, done.stderr
    return out / "run"


def test_index_shows_failures_first_then_every_notebook_offline(browser, run):
    check = check_page(browser, run / "index.html")
    assert check.problems == []
    assert check.internal_links >= 6  # summary.md/json, HTML + notebook of each, the failure's anchor
    text = check.text
    # the failure at the top: notebook, failing cell (execution count), its source and the exception
    assert text.index("1 notebook did not finish") < text.index("Notebooks")
    assert "02_broken.ipynb — failed in cell [3]" in text
    assert "raise ValueError('boom <b>' + str(x))" in text  # the cell's source, escaped, not markup
    assert "ValueError: boom <b>1" in text
    # every notebook in course order, with status, metrics and the run's provenance
    assert text.index("01_tiny.ipynb") < text.index("02_broken.ipynb", text.index("Notebooks"))
    assert "A tiny chapter" in text and "twice_alpha = 1" in text and "name = tiny" in text
    summary = json.loads((run / "summary.json").read_text())
    assert summary["environment"]["git_commit"] in text and f"seed {summary['seed']}" in text
    assert "torch" in text and summary["environment"]["torch"] in text


def test_chapter_renders_math_and_figure_with_no_network(browser, run):
    check = check_page(browser, run / "01_tiny.html")
    assert check.problems == []  # no request, console error, broken image or link, raw TeX
    assert check.math == 3  # one display formula, two inline
    assert check.images == 1  # the matplotlib figure
    html = (run / "01_tiny.html").read_text()
    assert 'src="_static/mathjax/MathJax.js?config=' in html


def test_a_report_folder_copied_elsewhere_still_renders(browser, run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "moved")
    check = check_page(browser, copy / "01_tiny.html")
    assert check.problems == [] and check.math == 3


def test_the_run_wrote_screenshots_of_the_index_and_a_chapter(run):
    shots = run / "screenshots"
    assert sorted(p.name for p in shots.iterdir()) == ["01_tiny.png", "index.png"]
    for png in shots.iterdir():
        assert png_size(png) == (1280, 900)


def test_the_checker_sees_what_a_reader_would_miss(browser, tmp_path):
    """A page with a network image, raw TeX, a broken link and a script error fails every check."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><div class="jp-MarkdownOutput">raw $$x^2$$ and $\\alpha$</div>'
        '<img src="http://127.0.0.1:9/figure.png"><img src="missing.png">'
        '<a href="nowhere.html">a</a><a href="#no-such-id">b</a><a id="here" href="#here">c</a>'
        "<script>undefinedFunction()</script></body></html>"
    )
    check = check_page(browser, page)
    assert check.requests == ["http://127.0.0.1:9/figure.png"]
    assert check.raw_math == ["$$", "$$", "$\\alpha$"]
    assert [Path(s).name for s in check.broken_images] == ["figure.png", "missing.png"]
    assert [h.rsplit("/", 1)[-1] for h in check.broken_links] == ["nowhere.html", "bad.html#no-such-id"]
    assert any("undefinedFunction" in e for e in check.console_errors)
