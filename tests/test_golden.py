"""Golden notebooks: every assignment's example submissions score exactly their recorded points.

Each `assignments/<name>/examples/expected.toml` (docs/expected-toml.md) lists, per example (plus `solution`
and `blank`, which `assign` builds), the points per question and, under `diagnoses`, words the feedback must
contain for a question, so each flawed example is shown to lose exactly the points of its mistake, for the
right reason. The comparisons are `torchgrade validate`'s own (`grading/validate.py`); the shipped assignments
are held to one rule more than an instructor's: at least four realistic flawed examples each.
"""

from __future__ import annotations

import pytest

from autograder.config import AssignmentConfig
from autograder.grading.validate import EXPECTED_FILE, example_files, example_problems, expected_problems
from conftest import ASSIGNMENTS, GOLDEN, expected_points

CASES = [(name, example) for name in GOLDEN for example in sorted(expected_points(name))]
SHIPPED_FLAWED_EXAMPLES = 4  # the shipped assignments only: `validate` asks no minimum of instructors


@pytest.mark.slow
@pytest.mark.parametrize("assignment, example", CASES)
def test_example_scores_its_expected_points(builds, assignment, example):
    result = builds.graded_examples(assignment)[example]
    problems = example_problems(result, expected_points(assignment)[example])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("assignment", GOLDEN)
def test_expected_toml_lists_every_example(assignment):
    source = ASSIGNMENTS / assignment
    config = AssignmentConfig.load(source / "assignment.toml")
    files = example_files(source)
    problems = expected_problems(expected_points(assignment), files, config, source / "examples" / EXPECTED_FILE)
    assert not problems, "\n".join(map(str, problems))
    assert len(files) >= SHIPPED_FLAWED_EXAMPLES  # at least four realistic flawed submissions


def test_every_assignment_has_golden_examples():
    assert set(GOLDEN) == {p.parent.name for p in ASSIGNMENTS.glob("*/assignment.toml")}
