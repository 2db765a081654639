"""Shared fixtures: each assignment built once per test session, its examples graded once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import nbformat
import pytest

from autograder.grading.proof import assign
from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.cli.demo import example_submissions

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = REPO / "assignments"


def expected_points(name: str) -> dict:
    """`examples/expected.toml`: per example, the points per question and the diagnoses expected."""
    return tomllib.loads((ASSIGNMENTS / name / "examples" / "expected.toml").read_text())


GOLDEN = sorted(p.parent.parent.name for p in ASSIGNMENTS.glob("*/examples/expected.toml"))


class Builds:
    """Builds and grades lazily, once per session, whichever assignments the selected tests use."""

    def __init__(self, root: Path):
        self.root = root
        self.reports: dict = {}
        self.grades: dict = {}

    def build(self, name: str):
        if name not in self.reports:
            self.reports[name] = assign(ASSIGNMENTS / name, self.root / "dist" / name)
        return self.reports[name]

    def graded_examples(self, name: str) -> dict:
        if name not in self.grades:
            report = self.build(name)
            bundle = load_assignment(report.autograder_dir)
            submissions = example_submissions(report.autograder_dir, ASSIGNMENTS / name)
            batch = grade_into(bundle, submissions, self.root / "grades" / name, GradeSettings(jobs=2))
            self.grades[name] = {r.submission: r for r in batch.graded}
        return self.grades[name]


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> Builds:
    return Builds(tmp_path_factory.mktemp("builds"))


@pytest.fixture(scope="session")
def convolution_build(builds):
    """`torchgrade assign assignments/convolution`: the report, with the solution and blank graded."""
    return builds.build("convolution")


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
