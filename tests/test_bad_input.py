"""A batch of broken submissions: each gets its own row and status, the batch completes."""

from __future__ import annotations

import json

import pytest

from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.report.gradebook import GRADEBOOK
from bad_submissions import EXPECTED, write_bad_submissions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad_batch(convolution_build, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    paths = write_bad_submissions(convolution_build.autograder_dir / "solution.ipynb", folder / "in")
    bundle = load_assignment(convolution_build.autograder_dir)
    out = folder / "out"
    report = grade_into(bundle, sorted(paths.values()), out, GradeSettings(jobs=2, timeout=20))
    return out, {r.submission: r for r in report.graded}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_status_and_points(bad_batch, name):
    out, results = bad_batch
    status, total = EXPECTED[name]
    assert results[name].status == status, results[name].message
    assert results[name].total == total
    assert results[name].message or status == "ok"


def test_gradebook_has_a_row_for_every_submission(bad_batch):
    import pandas as pd

    out, _ = bad_batch
    frame = pd.read_csv(out / GRADEBOOK)
    assert sorted(frame["submission"]) == sorted(EXPECTED)
    assert dict(zip(frame["submission"], frame["status"])) == {k: v[0] for k, v in EXPECTED.items()}


def test_errors_and_limits_are_explained(bad_batch):
    out, results = bad_batch
    assert "not JSON" in results["not_json"].message
    assert "empty" in results["empty"].message
    assert any("SyntaxError" in e for e in results["syntax_error"].cell_errors)
    assert "memory limit" in results["memory_bomb"].message
    assert "kernel died while running cell" in results["exits_midway"].message
    assert "(import os)" in results["exits_midway"].message
    assert "time limit" in results["uninterruptible_loop"].message


def test_flooded_output_is_cut_and_results_stay_small(bad_batch):
    out, _ = bad_batch
    assert (out / "results" / "floods_output.json").stat().st_size < 100_000
    data = json.loads((out / "results" / "floods_output.json").read_text())
    assert data["extra_data"]["status"] == "ok"
