"""Golden notebooks: every assignment's example submissions score exactly their recorded points.

Each `assignments/<name>/examples/expected.toml` lists, per example (plus `solution` and
`blank`, which `assign` builds), the points per question and, under `diagnoses`, words the
feedback must contain for a question, so each flawed example is shown to lose exactly the
points of its mistake, for the right reason.
"""

from __future__ import annotations

import pytest

from conftest import ASSIGNMENTS, GOLDEN, expected_points

pytestmark = pytest.mark.slow

CASES = [(name, example) for name in GOLDEN for example in sorted(expected_points(name))]


@pytest.mark.parametrize("assignment, example", CASES)
def test_example_scores_its_expected_points(builds, assignment, example):
    result = builds.graded_examples(assignment)[example]
    expected = expected_points(assignment)[example]
    assert result.status == "ok", result.message
    assert result.flags == [], result.flags  # honest notebooks, realistic mistakes: nothing to flag
    got = {q.id: q.points for q in result.questions}
    want = {k: v for k, v in expected.items() if k != "diagnoses"}
    assert got == pytest.approx(want, abs=0.01), "\n".join(
        f"{q.id}/{o.check}: {o.message} {o.hint}" for q in result.questions for o in q.outcomes if not o.passed)
    for question, words in expected.get("diagnoses", {}).items():
        q = next(q for q in result.questions if q.id == question)
        feedback = " ".join(f"{o.message} {o.hint}" for o in q.outcomes if not o.passed)
        assert words in feedback, f"{question}: {feedback}"


@pytest.mark.parametrize("assignment", GOLDEN)
def test_every_example_file_has_expected_points(assignment):
    files = {p.stem for p in (ASSIGNMENTS / assignment / "examples").glob("*.ipynb")}
    assert files | {"solution", "blank"} == set(expected_points(assignment))
    assert len(files) >= 4  # at least four realistic flawed submissions


def test_every_assignment_has_golden_examples():
    assert set(GOLDEN) == {p.parent.name for p in ASSIGNMENTS.glob("*/assignment.toml")}
