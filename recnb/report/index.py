"""``reports/<run>/index.html``: the run's notebooks in course order, failures first.

Built from the same data as ``summary.json`` (see :func:`recnb.report.runner.write_summary`), plus
what only the executed notebooks hold: their titles, and for a failure the failing cell's source and
its traceback. A plain page: one stylesheet, no scripts, no requests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from recnb.report.files import format_metric
from recnb.report.html import render_page

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TRACEBACK_CHARS = 6000


def notebook_title(notebook: nbformat.NotebookNode) -> str | None:
    """The text of the first ``# heading`` in the notebook's markdown (links and emphasis as plain text)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return re.sub(r"[*`]", "", _MD_LINK.sub(r"\1", line[2:])).strip()
    return None


def failing_cell(notebook: nbformat.NotebookNode, execution_count: int | None) -> tuple[str | None, str | None]:
    """The source and traceback (ANSI colours removed) of the cell that raised.

    That is the code cell with an error output, the one with ``execution_count`` if several have one
    (papermill also puts a markdown cell naming the error at the top, so indices shift).
    """
    raised = [c for c in notebook.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    if not raised:
        return None, None
    cell = next((c for c in raised if c.get("execution_count") == execution_count), raised[-1])
    error = [o for o in cell.outputs if o.get("output_type") == "error"][-1]
    traceback = _ANSI.sub("", "\n".join(error.get("traceback", [])))
    if len(traceback) > _TRACEBACK_CHARS:
        traceback = "…\n" + traceback[-_TRACEBACK_CHARS:]
    return cell.source, traceback or None


def report_index_html(data: dict[str, Any], directory: Path) -> str:
    """The index page of the run in ``directory``, from its summary ``data``."""
    rows, failures = [], []
    for r in data["notebooks"]:
        stem = Path(r["notebook"]).stem
        executed = None
        if r.get("output") and (directory / r["output"]).exists():
            executed = nbformat.read(str(directory / r["output"]), as_version=4)
        links = [("HTML", r["html"])] if r.get("html") else []
        links += [("notebook", r["output"])] if r.get("output") else []
        row = {
            **r,
            "anchor": f"nb-{stem}",
            "title": notebook_title(executed) if executed is not None else None,
            "metrics": [(k, format_metric(v)) for k, v in r["metrics"].items()],
            "links": links,
        }
        rows.append(row)
        if r["status"] in ("failed", "rejected"):
            error = r.get("error") or {}
            source, traceback = failing_cell(executed, error.get("cell")) if executed is not None else (None, None)
            failures.append({
                "notebook": r["notebook"], "anchor": row["anchor"], "status": r["status"], "links": links,
                "cell": error.get("cell"), "ename": error.get("ename", "error"), "evalue": error.get("evalue", ""),
                "source": source, "traceback": traceback,
            })
    env = dict(data["environment"])
    if "git_commit" in env and env.pop("git_dirty", False):
        env["git_commit"] += " (with uncommitted changes)"
    counts = {s: sum(r["status"] == s for r in data["notebooks"]) for s in ("ok", "pending")}
    return render_page(
        "report_index.html.j2", data=data, run=directory.name, notebooks=rows, failures=failures,
        environment=[(k, v) for k, v in env.items() if v is not None], counts=counts,
    )
