"""One grading policy (`autograder/outcomes.py`), read by every writer: they agree by construction (no kernels)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from autograder.config import AssignmentConfig, Question
from autograder.errors import ConfigError
from autograder.outcomes import Budget, Outcome, SubmissionResult, done, score, shares
from autograder.report.gradebook import write_gradebook
from autograder.report.lms import export_lms
from autograder.report.records import RECORDS, SCHEMA_VERSION, Records
from autograder.report.writers import write_result

CONFIG = AssignmentConfig(name="conv", title="Convolution", notebook="conv.ipynb",
                          questions=[Question("conv2d", 8.0), Question("sobel", 4.0)])


def outcome(check: str, question: str, status: str, score_: float, weight: float = 1.0) -> Outcome:
    return Outcome(check, question, True, weight, score_, f"{check} says {status}", status=status,
                   detail="Traceback: boom" if status == "error" else "")


def result(name: str, outcomes: list[Outcome], status: str = "ok") -> SubmissionResult:
    return SubmissionResult(name, status, score(CONFIG.questions, outcomes))


def grade_everywhere(tmp_path: Path, results: list[SubmissionResult]) -> dict:
    """Every writer's account of each result: gradebook CSV, results JSON, LMS csv and canvas, feedback."""
    out = tmp_path / "out"
    records = Records(out)
    for r in results:
        records.add(r, "digest")
        write_result(out, r, CONFIG)
    records.close()
    write_gradebook(out, CONFIG, results)
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,name,id\n" + "".join(f"{r.submission},{r.submission},{i}\n"
                                                        for i, r in enumerate(results)))
    export_lms(out, roster, "canvas", tmp_path / "canvas.csv", "Convolution")
    with (out / "gradebook.csv").open() as f:
        gradebook = {row["submission"]: row for row in csv.DictReader(f)}
    with (tmp_path / "canvas.csv").open() as f:
        canvas = {row[0]: row[-1] for row in list(csv.reader(f))[2:]}
    return {r.submission: {
        "gradebook": gradebook[r.submission],
        "json": json.loads((out / "results" / f"{r.submission}.json").read_text()),
        "canvas": canvas[r.submission],
        "feedback": (out / "feedback" / f"{r.submission}.txt").read_text(),
    } for r in results}


def test_a_check_the_grader_could_not_run_costs_the_student_nothing_in_any_output(tmp_path):
    # conv2d: one check passed, one the grader could not run; sobel: passed
    r = result("ann", [outcome("small", "conv2d", "passed", 1.0), outcome("hidden_big", "conv2d", "error", 0.0),
                       outcome("edges", "sobel", "passed", 1.0)])
    assert r.total == 12.0 and not r.final and r.needs_review  # provisional until an instructor has looked
    seen = grade_everywhere(tmp_path, [r])["ann"]
    assert float(seen["gradebook"]["total"]) == 12.0 and seen["gradebook"]["review"] == "check-error"
    assert seen["json"]["score"] == 12.0 and seen["json"]["extra_data"]["final"] is False
    tests = {t["name"]: t for t in seen["json"]["tests"]}
    assert tests["conv2d / small"]["max_score"] == 8.0 and tests["conv2d / hidden_big"]["max_score"] == 0.0
    assert sum(t["score"] for t in tests.values()) == 12.0
    assert seen["canvas"] == ""  # no final grade yet: neither the 8 a zero would cost, nor an unseen 12
    assert "left out of your score" in seen["feedback"] and "conv2d: 8 / 8" in seen["feedback"]
    assert "not final" in seen["json"]["output"]


def test_a_check_that_ran_everywhere_gives_the_same_final_grade(tmp_path):
    r = result("dee", [outcome("small", "conv2d", "partial", 0.5), outcome("edges", "sobel", "failed", 0.0)])
    seen = grade_everywhere(tmp_path, [r])["dee"]
    assert r.final and float(seen["gradebook"]["total"]) == seen["json"]["score"] == 4.0
    assert seen["canvas"] == "4" and seen["gradebook"]["review"] == ""


def test_a_question_none_of_whose_checks_ran_is_pending_everywhere(tmp_path):
    r = result("bo", [outcome("small", "conv2d", "error", 0.0), outcome("edges", "sobel", "passed", 1.0)])
    assert r.questions[0].pending and not r.final and r.grade is None
    seen = grade_everywhere(tmp_path, [r])["bo"]
    assert seen["gradebook"]["conv2d"] == "" and seen["gradebook"]["review"] == "pending:conv2d"
    assert seen["json"]["extra_data"]["final"] is False and seen["json"]["extra_data"]["pending"] == ["conv2d"]
    assert seen["json"]["extra_data"]["questions"]["conv2d"] is None
    assert seen["canvas"] == ""  # no grade yet: never a zero the student did not earn
    assert "conv2d: pending / 8" in seen["feedback"] and "not final" in seen["feedback"]


def test_a_grader_failure_is_no_grade_anywhere(tmp_path):
    r = SubmissionResult.ungraded_row("cy", "error", "the grader failed: boom", CONFIG.questions)
    seen = grade_everywhere(tmp_path, [r])["cy"]
    assert seen["canvas"] == "" and seen["gradebook"]["review"] == "grader-failed"
    assert seen["json"]["extra_data"]["final"] is False and "not a grade" in seen["json"]["output"]


def test_question_points_are_shared_exactly_among_its_tests():
    assert shares(10.0, [1, 1, 1]) == [3.34, 3.33, 3.33] and sum(shares(10.0, [1, 1, 1])) == pytest.approx(10.0)
    assert shares(5.0, [2, 1, 1, 1, 1]) == [1.67, 0.84, 0.83, 0.83, 0.83]
    assert round(sum(shares(5.0, [2, 1, 1, 1, 1])), 6) == 5.0
    assert shares(4.0, []) == [] and shares(4.0, [0.0]) == [0.0]


def test_what_a_rerun_grades_again():
    ok = result("a", [outcome("small", "conv2d", "passed", 1.0)])
    assert done(ok, "d1", "d1") and not done(ok, "d2", "d1")
    assert not done(SubmissionResult.ungraded_row("a", "error", "boom", CONFIG.questions), "d1", "d1")
    assert not done(result("a", [outcome("small", "conv2d", "error", 0.0)]), "d1", "d1")
    assert done(result("a", [outcome("small", "conv2d", "failed", 0.0)], status="timeout"), "d1", "d1")


def test_the_records_resume_what_the_grader_owes_without_force(tmp_path):
    records = Records(tmp_path)
    records.add(SubmissionResult.ungraded_row("failed", "error", "the grader failed", CONFIG.questions), "d")
    records.add(result("graded", [outcome("small", "conv2d", "passed", 1.0)]), "d")
    assert not records.done("failed", "d") and records.done("graded", "d")
    records.close()


def test_records_of_an_older_schema_are_read_and_a_newer_schema_is_refused(tmp_path):
    # a record as the first torchgrade wrote it: no version, results without phase or isolation fields
    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / RECORDS)
    db.execute("CREATE TABLE results (submission TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL, "
               "graded_at REAL NOT NULL, result TEXT NOT NULL)")
    data = {"submission": "ann", "status": "ok", "message": "", "path": "", "execution_time": 1.0, "cell_time": 0.5,
            "cell_errors": [], "device": "cpu", "flags": [], "memory_peak_mb": 1.0, "restarts": 0, "figures": [],
            "questions": [{"id": "conv2d", "points": 8.0, "max_points": 8.0, "outcomes": [
                {"check": "small", "question": "conv2d", "public": True, "weight": 1.0, "score": 1.0, "message": "ok",
                 "hint": "", "seconds": 0.1, "status": "passed", "detail": "", "doc": ""}]}]}
    db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?)", ("ann", "ann.ipynb", "d", 0.0, json.dumps(data)))
    db.commit()
    db.close()
    records = Records(old)
    [ann] = records.results()
    assert ann.total == 8.0 and ann.questions[0].outcomes[0].phase == "check" and records.done("ann", "d")
    records.close()
    db = sqlite3.connect(old / RECORDS)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="newer torchgrade"):
        Records(old)


def test_the_budget_clock_starts_when_the_kernel_is_attached():
    budget = Budget(10.0)
    assert budget.left() == 10.0 and budget.used() == 0.0  # a sandbox prepared ahead costs nothing
    budget.start()
    started = budget.started
    budget.start()  # a restart does not reset it
    assert budget.started == started and budget.left() <= 10.0


def test_a_probe_failure_in_the_kernel_counts_as_zero_until_looked_at(tmp_path):
    """A kernel can make its own probe fail: such a check must not drop out of the score Gradescope takes."""
    probe_error = Outcome("hidden_big", "conv2d", False, 1.0, 0.0, "asking the kernel failed", status="error",
                          phase="probe")
    r = result("eve", [outcome("small", "conv2d", "passed", 1.0), probe_error, outcome("edges", "sobel", "passed", 1.0)])
    assert r.questions[0].points == 4.0 and r.total == 8.0 and not r.final
    seen = grade_everywhere(tmp_path, [r])["eve"]
    assert seen["json"]["score"] == 8.0 and seen["canvas"] == ""
    assert "counts as zero until your instructor has looked" in seen["feedback"]
