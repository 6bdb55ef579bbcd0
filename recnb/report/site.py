"""The course as a static site: the committed notebooks with their stored outputs, no re-execution.

Layout of ``site/`` (``make site`` or ``recnb site``)::

    index.html                 contents, in course order
    00_quickstart.html ...     one page per chapter: rendered math, figures, code, prev/next links
    notebooks/*.ipynb          the notebooks themselves, to download
    _static/mathjax/           MathJax, loaded by a relative path: the folder works from disk,
                               copied anywhere, or served with ``python -m http.server``
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import nbformat

from recnb.report.html import copy_mathjax, notebook_html, relative_url, render_page
from recnb.report.index import notebook_title
from recnb.report.files import atomic_write
from recnb.report.runner import REPO_ROOT, environment, find_notebooks

DEFAULT_SITE = REPO_ROOT / "site"
_NUMBERED = re.compile(r"^\d+\s*[·.:—-]\s*")  # "02 · ", "3. " at the start of a heading
# a link from one chapter to another notebook: href="NN_name.ipynb" or href="NN_name.ipynb#anchor"
_NOTEBOOK_LINK = re.compile(r'href="(?:\./)?([0-9][^"/#]*)\.ipynb(#[^"]*)?"')


def _chapters(notebooks: list[Path]) -> list[dict[str, Any]]:
    chapters = []
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        chapters.append({
            "path": path, "nb": nb, "name": path.name, "stem": path.stem,
            "number": path.stem.split("_", 1)[0], "title": _NUMBERED.sub("", notebook_title(nb) or path.stem),
            "href": f"{path.stem}.html", "notebook": f"notebooks/{path.name}",
        })
    return chapters


def _link_chapters(page: str, stems: set[str]) -> str:
    """Point links to other chapters' ``.ipynb`` at their pages in the site."""
    return _NOTEBOOK_LINK.sub(
        lambda m: f'href="{m[1]}.html{m[2] or ""}"' if m[1] in stems else m[0], page)


def build_site(
    out_dir: Path | str = DEFAULT_SITE,
    notebooks: list[Path] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Path:
    """Write the site for ``notebooks`` (default: every committed one) into ``out_dir``; returns its index.

    Chapter pages left over from notebooks that no longer exist are removed.
    """
    out = Path(out_dir)
    chapters = _chapters(notebooks if notebooks is not None else find_notebooks())
    mathjax = relative_url(copy_mathjax(out), out)
    stems = {c["stem"] for c in chapters}
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.html"), *(out / "notebooks").glob("*.ipynb")]:
        if stale.stem not in stems and stale.name != "index.html":
            stale.unlink()
    for i, chapter in enumerate(chapters):
        shutil.copyfile(chapter["path"], out / chapter["notebook"])
        nav = {
            "contents": "index.html",
            "notebook": chapter["notebook"],
            "prev": _nav_link(chapters[i - 1]) if i > 0 else None,
            "next": _nav_link(chapters[i + 1]) if i + 1 < len(chapters) else None,
        }
        title = f"{chapter['number']} · {chapter['title']}"
        page = notebook_html(chapter["nb"], mathjax, nav=nav, resources_dir=chapter["path"].parent, title=title)
        atomic_write(out / chapter["href"], _link_chapters(page, stems))
        log(f"wrote {out / chapter['href']}")
    commit = environment().get("git_commit")
    index = out / "index.html"
    atomic_write(index, render_page(
        "site_contents.html.j2", chapters=chapters, commit=commit[:12] if commit else None,
        built=dt.datetime.now().isoformat(timespec="seconds"),
    ))
    log(f"wrote {index}")
    return index


def _nav_link(chapter: dict[str, Any]) -> dict[str, str]:
    return {"href": chapter["href"], "title": f"{chapter['number']} · {chapter['title']}"}
