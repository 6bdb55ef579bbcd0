"""Offline HTML, the report index and the site, read as files (the browser tests open them in Chromium)."""

from __future__ import annotations

import base64
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from recnb.cli import main
from recnb.report.html import FONTS_JS, copy_mathjax, mathjax_source, notebook_html
from recnb.report.index import failing_cell, notebook_title, report_index_html
from recnb.report.site import _link_chapters, build_site

PNG = base64.b64decode(  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_mathjax_is_copied_once_with_its_fonts_as_data_uris(tmp_path):
    target = copy_mathjax(tmp_path)
    assert target == tmp_path / "_static" / "mathjax"
    assert (target / "MathJax.js").read_bytes() == (mathjax_source() / "MathJax.js").read_bytes()
    assert (target / "config" / "TeX-AMS-MML_HTMLorMML-full.js").exists()
    assert not (target / "extensions" / "a11y").exists() and not (target / "fonts").exists()
    fonts = (target / FONTS_JS).read_text()
    woff = sorted((mathjax_source() / "fonts" / "HTML-CSS" / "STIX-Web" / "woff").glob("*.woff"))
    assert len(woff) > 20
    for f in woff:
        assert f'"{f.stem}": "data:font/woff;base64,{base64.b64encode(f.read_bytes()).decode()}"' in fonts
    (target / "MathJax.js").write_text("kept")
    assert copy_mathjax(tmp_path) == target and (target / "MathJax.js").read_text() == "kept"
    assert [p.name for p in (tmp_path / "_static").iterdir()] == ["mathjax"]  # no temporary folder left


def test_notebook_page_loads_nothing_from_the_network(tmp_path):
    (tmp_path / "figure.png").write_bytes(PNG)
    nb = new_notebook(cells=[
        new_markdown_cell("# 01 · Title\n\n$$\\sum_i x_i$$ and ![a figure](figure.png)"),
        new_code_cell("1 + 1", outputs=[new_output("display_data", data={"image/png": base64.b64encode(PNG).decode()})]),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}  # would load unpkg
    page = notebook_html(nb, "../_static/mathjax", resources_dir=tmp_path, title="01 · Title")
    sources = re.findall(r'<(?:script|link|img|iframe)\s[^>]*(?:src|href)="([^"]+)"', page)
    assert sources[:2] == ["../_static/mathjax/recnb-fonts.js",
                           "../_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"]
    assert all(s.startswith(("../_static/", "data:image/png;base64,")) for s in sources), sources
    assert sum(s.startswith("data:image/png") for s in sources) == 2  # the output and the markdown image
    assert "unpkg" not in page and "cdnjs" not in page and "require.js" not in page and "mermaid.esm" not in page
    assert "<title>01 · Title</title>" in page and "$$\\sum_i x_i$$" in page


def test_links_between_chapters_point_at_their_pages():
    page = ('<a href="02_loss.ipynb">n</a> <a href="./02_loss.ipynb#Summary">s</a> <a href="09_later.ipynb">x</a> '
            '<a href="https://example.org/02_loss.ipynb">e</a>')
    assert _link_chapters(page, {"02_loss"}) == (
        '<a href="02_loss.html">n</a> <a href="02_loss.html#Summary">s</a> <a href="09_later.ipynb">x</a> '
        '<a href="https://example.org/02_loss.ipynb">e</a>')


def test_failing_cell_is_the_one_that_raised_not_papermills_banner():
    banner = new_markdown_cell('<span style="color:red">An Exception was encountered at In [2]</span>')
    ok = new_code_cell("x = 1", execution_count=1)
    bad = new_code_cell("1 / 0", execution_count=2, outputs=[new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero",
        traceback=["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])])
    nb = new_notebook(cells=[banner, ok, bad])
    assert failing_cell(nb, 2) == ("1 / 0", "ZeroDivisionError: division by zero")
    assert failing_cell(new_notebook(cells=[ok]), 1) == (None, None)
    assert notebook_title(new_notebook(cells=[ok, new_markdown_cell("intro\n# 03 · **Data** `x`")])) == "03 · Data x"


def test_index_puts_failures_first_and_escapes_what_notebooks_say(tmp_path):
    data = {
        "profile": "smoke", "started": "2026-01-01T00:00:00", "seed": 0, "ok": False,
        "environment": {"recnb": "0.1.0", "torch": "2.13.0", "git_commit": "abc123", "git_dirty": True, "numpy": None},
        "notebooks": [
            {"notebook": "01_a.ipynb", "status": "ok", "duration_s": 1.25, "parameters": {}, "metrics": {"ndcg@10": 0.123456},
             "error": None, "output": "01_a.ipynb", "html": "01_a.html"},
            {"notebook": "02_b.ipynb", "status": "rejected", "duration_s": 0.0, "parameters": {}, "metrics": {},
             "error": {"cell": None, "ename": "ParameterError", "evalue": "unknown parameter '<x>'"},
             "output": None, "html": None},
            {"notebook": "03_c.ipynb", "status": "pending", "duration_s": 0.0, "parameters": {}, "metrics": {},
             "error": None, "output": None, "html": None},
        ],
    }
    page = report_index_html(data, tmp_path / "smoke-run")
    assert page.index('id="failures"') < page.index('id="notebooks"')
    assert "unknown parameter &#39;&lt;x&gt;&#39;" in page and "<x>" not in page
    assert "ndcg@10 = <strong>0.1235</strong>" in page and ">1.2<" in page  # "%.1f" of 1.25
    assert '<a href="01_a.html">HTML</a> · <a href="01_a.ipynb">notebook</a>' in page
    assert "1 of 3 ok, 1 still to run" in page
    assert "abc123 (with uncommitted changes)" in page and "numpy" not in page
    assert "<script" not in page


def test_site_has_contents_pages_notebooks_and_drops_stale_chapters(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    for name, heading in [("00_start", "# 00 · Start"), ("01_next", "# 1. Next: see [the start](00_start.ipynb)")]:
        nbformat.write(new_notebook(cells=[new_markdown_cell(heading)]), str(src / f"{name}.ipynb"))
    out = tmp_path / "site"
    (out / "notebooks").mkdir(parents=True)
    (out / "99_gone.html").write_text("old")
    (out / "notebooks" / "99_gone.ipynb").write_text("{}")
    index = build_site(out, sorted(src.glob("*.ipynb")))
    assert sorted(p.name for p in out.iterdir()) == ["00_start.html", "01_next.html", "_static", "index.html", "notebooks"]
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["00_start.ipynb", "01_next.ipynb"]
    contents = index.read_text()
    assert contents.index('href="00_start.html">Start</a>') < contents.index('href="01_next.html">Next: see the start</a>')
    second = (out / "01_next.html").read_text()
    assert '<a href="00_start.html">the start</a>' in second and "<title>01 · Next: see the start</title>" in second


def test_site_help_says_what_it_builds(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["site", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("stored outputs", "nothing is executed", "--out DIR", "http.server", "NOTEBOOK"):
        assert phrase in text
