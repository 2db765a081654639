"""Two audiences: what students read holds no hidden input or expected value; instructors read everything."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.batch import grade_batch
from autograder.config import GradeSettings
from conftest import cell_index_defining

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(builds, tmp_path_factory):
    """A shapes notebook whose conv_output_size is wrong on every input, hidden ones included."""
    report = builds.build("shapes")
    folder = tmp_path_factory.mktemp("feedback")
    nb = nbformat.read(report.autograder_dir / "solution.ipynb", as_version=4)
    nb.cells[cell_index_defining(nb, "conv_output_size")].source = (
        "def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):\n    return 9999\n")
    nbformat.write(nb, folder / "wrong.ipynb")
    out = folder / "out"
    grade_batch(load_assignment(report.autograder_dir), [folder / "wrong.ipynb"], out, GradeSettings())
    return out, load_assignment(report.autograder_dir)


def test_student_feedback_never_shows_a_hidden_expected_value(graded):
    out, bundle = graded
    instructor = (out / "instructor" / "wrong.txt").read_text()
    hidden = {c.name for c in bundle.checks.checks if not c.public}
    hidden_lines = [line for line in instructor.splitlines()
                    if any(f"{name} (hidden):" in line for name in hidden) and "expected" in line]
    expected = {m for line in hidden_lines for m in re.findall(r"expected ([0-9][0-9, ()]*)", line)}
    assert hidden_lines and expected  # the instructor sees what the hidden checks expected
    student_files = [out / "feedback" / "wrong.txt", out / "feedback" / "wrong.html", out / "results" / "wrong.json"]
    for path in student_files:
        text = path.read_text()
        for line in hidden_lines:
            assert line.split(": ", 1)[1] not in text, (path.name, line)
        for value in expected:
            assert f"expected {value}" not in text, (path.name, value)


def test_students_still_see_which_hidden_checks_failed_and_why_in_general(graded):
    out, bundle = graded
    text = (out / "feedback" / "wrong.txt").read_text()
    hidden = [c for c in bundle.checks.checks if not c.public and c.question == "conv_output_size"]
    for check in hidden:
        assert f"[FAIL] {check.name} (hidden): {check.doc}" in text
    results = json.loads((out / "results" / "wrong.json").read_text())
    visibility = {t["name"].split(" / ")[1]: t["visibility"] for t in results["tests"]}
    assert all(visibility[c.name] == "after_published" for c in hidden)
