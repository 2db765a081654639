"""Shared fixtures: the convolution assignment built once per test session."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.assign import assign

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = REPO / "assignments"


@pytest.fixture(scope="session")
def convolution_build(tmp_path_factory):
    """`torchgrade assign assignments/convolution`: the report, with the solution and blank graded."""
    return assign(ASSIGNMENTS / "convolution", tmp_path_factory.mktemp("dist") / "convolution")


def notebook_with(base: Path, *extra_cells: str, at: int | None = None) -> nbformat.NotebookNode:
    """A copy of the notebook at `base` with code cells inserted at `at` (default: the end)."""
    nb = nbformat.read(base, as_version=4)
    cells = [nbformat.v4.new_code_cell(src) for src in extra_cells]
    index = len(nb.cells) if at is None else at
    nb.cells[index:index] = cells
    return nb


def cell_index_defining(nb: nbformat.NotebookNode, name: str) -> int:
    """The index of the cell that defines `name` (cells are found by what they define, not position)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (f"def {name}(" in cell.source or cell.source.startswith(f"{name} =")):
            return i
    raise LookupError(name)
