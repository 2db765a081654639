"""What every executor's workers share: grading one submission safely, and the rows for a grader's failures.

A worker process loads the assignment once and keeps a warm zygote (forked from `warm.warm_context`'s server); each submission is graded
by `grade_safely`, which turns a failure of the grader itself into an `error` row (`grader_failed`). A worker's
death is charged to the one submission it was running (`worker_died`, after `RETRIES` more tries).
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Callable

from ..config import GradeSettings
from ..outcomes import SubmissionResult
from .submissions import Submission

if TYPE_CHECKING:  # the grader itself (torch and all) is imported by whoever grades, not by who hands out work
    from ..build.assignment import Assignment
    from ..kernel.prefetch import Prefetch

RETRIES = 1  # a submission whose worker died under it is graded again this many times, then gets an `error` row

Finish = Callable[[SubmissionResult], None]


def grade_safely(assignment: "Assignment", submission: Submission, settings: GradeSettings,
                 prefetch: "Prefetch | None" = None) -> SubmissionResult:
    """Grade one submission; a failure of the grader itself becomes an `error` row."""
    from .pipeline import grade_submission  # the grader: preloaded by the workers' server (warm.py)

    try:
        return grade_submission(submission.path, assignment, settings, prefetch=prefetch, name=submission.name)
    except Exception as exc:  # the batch goes on; the row says what went wrong
        return grader_failed(assignment, submission, describe(exc))


def grader_failed(assignment: "Assignment", submission: Submission, detail: str) -> SubmissionResult:
    return SubmissionResult.ungraded_row(submission.name, "error", f"the grader failed: {detail}",
                                         assignment.config.questions, str(submission.path))


def worker_died(assignment: "Assignment", submission: Submission, deaths: list[str]) -> SubmissionResult:
    """The row of a submission whose worker died under it more than `RETRIES` times."""
    return SubmissionResult.ungraded_row(
        submission.name, "error", f"the grading worker process died while grading it, {len(deaths)} times "
        f"({'; '.join(deaths)})", assignment.config.questions, str(submission.path))


def describe(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()
