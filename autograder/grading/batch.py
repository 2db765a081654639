"""Grading many submissions: an executor grades them, this process hands each result to an outbox as it arrives.

Each submission is graded by a worker (the student's code runs further down, in a sandboxed kernel forked
from the worker's zygote): worker processes on this machine, or the workers of a Dask cluster
(`executors.py`, `--executor`). Results come back to this process alone, which gives each one to the batch's
`Outbox` the moment it arrives: the grader's records and files (`report/outbox.py`), which also say what is
already done for a resumed batch. A grader failure on one submission becomes an `error` row; a worker that
dies costs only the submission it was running, which is graded again once. What the executor needs (device,
isolation) is checked before any work starts: where submissions cannot be isolated, the batch refuses (fails
closed) unless isolation is "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from ..config import GradeSettings
from ..outcomes import SubmissionResult
from .executors import get_executor
from .submissions import Submission, as_submission

if TYPE_CHECKING:
    from ..build.assignment import Assignment


class Outbox(Protocol):
    """Where a batch's results go (`report.outbox.Outbox`)."""

    def todo(self, submissions: list[Submission], force: bool) -> list[Submission]:
        """The submissions still to grade: not yet graded to the end for the same notebook (all with `force`)."""

    def add(self, result: SubmissionResult) -> None:
        """Keep one result, the moment it arrives."""

    def close(self) -> Any:
        """The batch is over (or interrupted): write what is written once; returns the gradebook."""


@dataclass
class BatchReport:
    gradebook: Any  # the final gradebook table (a pandas DataFrame from report.outbox)
    graded: list[SubmissionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def grade_batch(assignment: "Assignment", submissions: Iterable[Submission | Path], settings: GradeSettings,
                outbox: Outbox, on_result: Callable[[SubmissionResult], None] | None = None,
                on_start: Callable[[int], None] | None = None,
                on_ready: Callable[[], None] | None = None) -> BatchReport:
    """Grade what `outbox` says is still to do; `on_ready` is called once the batch is sure to run (what it records
    before its results, such as the course's dates), `on_start` is told how many are to do before the first starts,
    `on_result` gets each result once the outbox holds it."""
    executor = get_executor(settings)
    submissions = [as_submission(s) for s in submissions]
    try:
        if hasattr(executor, "expect"):
            executor.expect(submissions)
        executor.check(assignment)  # before anything is written: a batch that cannot run leaves no trace
        if on_ready:
            on_ready()
        todo = outbox.todo(submissions, settings.force)
        regraded = {s.name for s in todo}
        report = BatchReport(None, skipped=[s.name for s in submissions if s.name not in regraded])

        def finish(result: SubmissionResult) -> None:
            outbox.add(result)  # recorded first: nothing graded is lost
            report.graded.append(result)
            if on_result:
                on_result(result)

        if on_start:
            on_start(len(todo))
        try:
            executor.run(assignment, todo, finish)
        finally:  # also on an interrupt
            report.gradebook = outbox.close()
    finally:
        executor.close()
    return report
