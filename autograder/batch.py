"""Grading many submissions: an executor grades them, this process records each result as it arrives.

Each submission is graded by a worker (the student's code runs further down, in a sandboxed kernel forked
from the worker's zygote): worker processes on this machine, or the workers of a Dask cluster
(`grading/executors.py`, `--executor`). Results come back to this process alone, which records each one
the moment it arrives (`report.records`, one SQLite row, O(1)), appends its gradebook row and writes its
files; the gradebook is written in full from the records once at the start and once at the end (also
after an interrupt), so the cost of a batch is linear in its size. A rerun skips a submission the records
hold for the same notebook, unless `force`. A grader failure on one submission becomes an `error` row; a
worker that dies costs only the submission it was running, which is graded again once. What the executor
needs (device, isolation) is checked before any work starts: where submissions cannot be isolated, the
batch refuses (fails closed) unless isolation is "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .assignment import Assignment
from .config import GradeSettings
from .grading.executors import get_executor
from .report.gradebook import Gradebook, write_result
from .report.records import Records, notebook_digest
from .results import SubmissionResult
from .submissions import Submission, as_submission


@dataclass
class BatchReport:
    gradebook: pd.DataFrame
    graded: list[SubmissionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def grade_batch(assignment: Assignment, submissions: Iterable[Submission | Path], out: Path, settings: GradeSettings,
                on_result: Callable[[SubmissionResult], None] | None = None,
                on_start: Callable[[int], None] | None = None) -> BatchReport:
    """Grade what the records do not hold for the same notebook (all with `force`); `on_start` is told how many
    that is before the first starts, `on_result` gets each result once it is recorded."""
    executor = get_executor(settings)
    executor.check()
    submissions = [as_submission(s) for s in submissions]
    records = Records(out)
    try:
        digests = {s.name: notebook_digest(s.path) for s in submissions}
        todo = [s for s in submissions if settings.force or not records.done(s.name, digests[s.name])]
        regraded = {s.name for s in todo}
        gradebook = Gradebook(out, assignment.config, [r for r in records.results() if r.submission not in regraded])
        report = BatchReport(pd.DataFrame(), skipped=[s.name for s in submissions if s.name not in regraded])

        def finish(result: SubmissionResult) -> None:
            records.add(result, digests.get(result.submission, ""))  # recorded first: nothing graded is lost
            gradebook.add(result)
            write_result(out, result, assignment.config)
            report.graded.append(result)
            if on_result:
                on_result(result)

        if on_start:
            on_start(len(todo))
        try:
            executor.run(assignment, todo, finish)
        finally:  # also on an interrupt: one pass over the records
            report.gradebook = gradebook.close(records.results())
    finally:
        records.close()
    return report
