"""Notebook HTML that renders offline: no request leaves the page.

nbconvert's ``lab`` template loads MathJax, require.js, the widget manager and mermaid from CDNs, so
offline every formula shows as raw ``$$...$$``. The ``recnb_notebook`` template (in
``recnb/report/templates/``) drops those and loads MathJax 2.7 (TeX input, HTML-CSS output,
STIX-Web fonts) from a copy beside the page: :func:`copy_mathjax` puts the MathJax that the PyPI
package ``jupyter-server-mathjax`` ships into ``<folder>/_static/mathjax/``, and pages refer to it by a
relative path, so a folder copied to another machine still renders. Figures are data URIs already;
images linked from markdown are embedded too.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from recnb.report.files import atomic_write

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = "_static"
MATHJAX = "mathjax"
#: MathJax 2.7 as jupyter-server-mathjax ships it (TeX input and HTML-CSS output in one combined
#: config, STIX-Web fonts), less the parts the pages never load.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
_MATHJAX_SKIP = {"extensions/a11y", "jax/output/SVG", "config/Safe.js", "fonts"}  # fonts: in FONTS_JS
_MATHJAX_LOCALES = {"localization/en"}
_MATHJAX_WOFF = "fonts/HTML-CSS/STIX-Web/woff"
FONTS_JS = "recnb-fonts.js"


def mathjax_source() -> Path:
    """The MathJax 2.7 folder shipped by ``jupyter-server-mathjax``."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise RuntimeError(
            "offline math needs the package jupyter-server-mathjax (a dependency of recnb): "
            "run `make setup` or `pip install -e .`"
        ) from None
    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def copy_mathjax(folder: Path) -> Path:
    """Copy MathJax into ``folder/_static/mathjax`` (once) and return that folder.

    The copy is made in a temporary folder and renamed into place, so a reader never sees half of it.
    """
    target = Path(folder) / STATIC / MATHJAX
    if (target / "MathJax.js").exists():
        return target
    source = mathjax_source()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mathjax.", dir=target.parent))

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = Path(folder).relative_to(source)
        skipped = [n for n in names if (here / n).as_posix() in _MATHJAX_SKIP]
        if here.as_posix() == "localization":
            skipped += [n for n in names if f"localization/{n}" not in _MATHJAX_LOCALES]
        return skipped

    try:
        shutil.copytree(source, tmp, ignore=ignore, dirs_exist_ok=True)
        (tmp / FONTS_JS).write_text(_fonts_script(source / _MATHJAX_WOFF), encoding="utf-8")
        os.chmod(tmp, 0o755)
        try:
            tmp.rename(target)
        except OSError:  # another writer got there first
            if not (target / "MathJax.js").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fonts_script(woff: Path) -> str:
    """``RECNB_MATHJAX_FONTS``: font name -> data URI of its woff file, for the page's fontFace hook."""
    fonts = {
        f.stem: "data:font/woff;base64," + base64.b64encode(f.read_bytes()).decode("ascii")
        for f in sorted(woff.glob("*.woff"))
    }
    return "window.RECNB_MATHJAX_FONTS = " + json.dumps(fonts, indent=0) + ";\n"


def relative_url(target: Path, start: Path) -> str:
    """The URL of ``target`` relative to the folder ``start`` (forward slashes, for href/src)."""
    return Path(os.path.relpath(target, start)).as_posix()


def notebook_html(
    notebook: nbformat.NotebookNode | Path,
    mathjax: str,
    nav: dict[str, Any] | None = None,
    resources_dir: Path | None = None,
    title: str | None = None,
) -> str:
    """Render ``notebook`` (a node or a path) as one offline HTML page.

    ``mathjax`` is the (relative) URL from the page of the folder :func:`copy_mathjax` made;
    ``nav``, when given, adds chapter links at the top and bottom: ``{"contents": href, "notebook": href or None,
    "prev": {"href", "title"} or None, "next": ...}``. ``resources_dir`` is where images linked from
    markdown are looked up (default: the notebook's folder); ``title`` is the page's title
    (default: the file's stem).
    """
    if isinstance(notebook, (str, Path)):
        path = Path(notebook)
        resources_dir = resources_dir or path.parent
        notebook = nbformat.read(str(path), as_version=4)
        title = title or path.stem
    title = title or "notebook"
    resources: dict[str, Any] = {
        "metadata": {"name": title, "path": str(resources_dir or Path.cwd())},
        "recnb_mathjax": mathjax,
        "recnb_mathjax_config": MATHJAX_CONFIG,
    }
    if nav:
        resources["recnb_nav"] = nav
    body, _ = _exporter(mathjax).from_notebook_node(notebook, resources=resources)
    return body


@functools.lru_cache(maxsize=4)
def _exporter(mathjax: str) -> Any:
    from nbconvert import HTMLExporter

    return HTMLExporter(
        extra_template_basedirs=[str(TEMPLATES)],
        template_name="recnb_notebook",
        embed_images=True,
        mathjax_url=f"{mathjax}/MathJax.js?config={MATHJAX_CONFIG}",  # unused by the template; never the CDN
    )


def write_notebook_html(notebook: Path, target: Path, resources_dir: Path | None = None) -> None:
    """Render ``notebook`` to ``target`` with MathJax copied beside it (``target``'s folder).

    ``resources_dir``: where images linked from its markdown are (default: the notebook's folder).
    """
    mathjax = copy_mathjax(target.parent)
    atomic_write(target, notebook_html(notebook, relative_url(mathjax, target.parent), resources_dir=resources_dir))


def render_page(template: str, **context: Any) -> str:
    """Render one of the plain page templates in ``recnb/report/templates/`` (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, keep_trailing_newline=True)
    return env.get_template(template).render(**context)
