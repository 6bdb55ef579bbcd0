"""The teaching structure every chapter keeps (issue 12): learning objectives at the top, 2-4
exercises with collapsed worked solutions at the end, references, and a link to the next chapter.

Reads the committed notebooks only (no kernel); that the solutions *run* is checked where every
notebook is executed (nbval and the smoke layer run solution cells like any other cell).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from recnb.report.runner import NOTEBOOKS_DIR

NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
NEXT_LINK = re.compile(r"\[Next\b[^\]]*\]\(([^)\s]+\.ipynb)\)", re.I)
REFERENCES = re.compile(r"^#{1,6}\s*References\b", re.I | re.M)
EXERCISES = re.compile(r"^#{1,6}\s*Exercises\b", re.I | re.M)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _is_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])


def _expected_next(path: Path) -> str:
    """The following chapter in course (file-name) order; the last chapter links back to the first."""
    names = [p.name for p in NOTEBOOKS]
    i = names.index(path.name)
    return names[i + 1] if i + 1 < len(names) else "00_quickstart.ipynb"


def test_the_course_has_notebooks() -> None:
    assert len(NOTEBOOKS) >= 7, f"expected the course's notebooks in {NOTEBOOKS_DIR}"
    assert NOTEBOOKS[0].name == "00_quickstart.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_you_will_learn_at_the_top(path: Path) -> None:
    cells = _read(path).cells[:3]
    assert any(c.cell_type == "markdown" and "you will learn" in c.source.lower() for c in cells), (
        f"{path.name}: no markdown cell with a 'You will learn' list among the first three cells"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_with_collapsed_solutions_at_the_end(path: Path) -> None:
    cells = _read(path).cells
    solutions = [i for i, c in enumerate(cells) if _is_solution(c)]
    assert 2 <= len(solutions) <= 4, f"{path.name}: {len(solutions)} code cells tagged 'solution', expected 2 to 4"
    heading = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and EXERCISES.search(c.source)), None)
    assert heading is not None and heading < solutions[0], f"{path.name}: no '## Exercises' heading before the solutions"
    for i in solutions:
        cell = cells[i]
        assert cell.source.strip(), f"{path.name}: solution cell {i} is empty"
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, (
            f"{path.name}: solution cell {i} is not collapsed (metadata jupyter.source_hidden must be true)"
        )
        before = i - 1
        while before > heading and _is_solution(cells[before]):
            before -= 1
        assert before >= heading and cells[before].cell_type == "markdown", (
            f"{path.name}: solution cell {i} is not preceded by a markdown cell stating its exercise"
        )
    # the solutions run last: nothing but markdown and solutions after the Exercises heading
    stray = [i for i, c in enumerate(cells[heading:], heading) if c.cell_type == "code" and not _is_solution(c)]
    assert not stray, f"{path.name}: code cells {stray} after the Exercises heading are not tagged 'solution'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_references(path: Path) -> None:
    cells = _read(path).cells
    assert any(c.cell_type == "markdown" and REFERENCES.search(c.source) for c in cells), (
        f"{path.name}: no '## References' heading"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_next_link_to_the_following_chapter(path: Path) -> None:
    cells = _read(path).cells
    targets = [t for c in cells if c.cell_type == "markdown" for t in NEXT_LINK.findall(c.source)]
    expected = _expected_next(path)
    assert expected in targets, f"{path.name}: no '[Next: ...]({expected})' link (found {targets or 'none'})"
    for target in targets:
        assert (path.parent / target).is_file(), f"{path.name}: 'Next' link to {target}, which does not exist"
