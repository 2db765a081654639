"""Golden notebooks: every example submission scores exactly its recorded points."""

from __future__ import annotations

import tomllib

import pytest

from autograder.assignment import load_assignment
from autograder.batch import grade_batch
from autograder.config import GradeSettings
from autograder.demo import example_submissions
from conftest import ASSIGNMENTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def convolution_grades(convolution_build, tmp_path_factory):
    bundle = load_assignment(convolution_build.autograder_dir)
    submissions = example_submissions(convolution_build.autograder_dir, ASSIGNMENTS / "convolution")
    out = tmp_path_factory.mktemp("golden")
    report = grade_batch(bundle, submissions, out, GradeSettings(jobs=2))
    return {r.submission: r for r in report.graded}


EXPECTED = tomllib.loads((ASSIGNMENTS / "convolution" / "examples" / "expected.toml").read_text())


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_scores_its_expected_points(convolution_grades, example):
    result = convolution_grades[example]
    assert result.status == "ok", result.message
    got = {q.id: q.points for q in result.questions}
    assert got == pytest.approx(EXPECTED[example]), "\n".join(
        f"{q.id}/{o.check}: {o.message}" for q in result.questions for o in q.outcomes)


def test_every_example_file_has_expected_points():
    files = {p.stem for p in (ASSIGNMENTS / "convolution" / "examples").glob("*.ipynb")}
    assert files | {"solution", "blank"} == set(EXPECTED)


@pytest.mark.parametrize("example, question, words", [
    ("flipped_kernel", "conv2d_single", "flipped kernel"),
    ("flipped_kernel", "conv2d", "flipped kernel"),
    ("off_by_one", "conv2d_single", "off by one"),
    ("one_sided_padding", "conv2d", "one side only"),
    ("library_conv", "conv2d", "does not allow (convolution)"),
    ("pool_stride_one", "max_pool2d", "stride defaulted to 1"),
    ("no_sqrt", "sobel", "square root is missing"),
    ("partial", "conv2d", "returned None"),
])
def test_flawed_examples_get_the_diagnosis_of_their_mistake(convolution_grades, example, question, words):
    q = next(q for q in convolution_grades[example].questions if q.id == question)
    feedback = " ".join(f"{o.message} {o.hint}" for o in q.outcomes if not o.passed)
    assert words in feedback
