"""A batch into `--out`: `grade_into` (records and files), and on the terminal with progress, the gradebook, the
report and where the files are (`run_batch`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from rich.markup import escape

from ..build.assignment import BLANK_NAME
from ..config import GradeSettings
from ..build.assignment import Assignment
from ..grading.batch import BatchReport, grade_batch
from ..grading.submissions import Submission
from ..outcomes import SubmissionResult
from ..report.outbox import Outbox
from ..report.gradebook import GRADEBOOK
from ..report.writers import FEEDBACK_DIR, INSTRUCTOR_DIR, RESULTS_DIR
from ..report.instructor import write_report
from ..report.terminal import BatchProgress, console, print_gradebook, print_summary
from ..kernel.machine import resolved_device


def run_batch(assignment, submissions, out: Path, settings: GradeSettings,
              on_ready: Callable[[], None] | None = None) -> BatchReport:
    start = time.perf_counter()
    sandbox = "in sandboxes" if settings.isolation != "none" else "[yellow]without isolation[/]"
    workers = (f"the Dask cluster at {settings.scheduler}" if settings.scheduler else f"{settings.jobs} job(s)"
               + (" on a Dask LocalCluster" if settings.executor == "dask" else ""))
    device = settings.device if settings.executor == "dask" else resolved_device(settings)  # workers resolve it
    console.print(f"grading {len(submissions)} submission(s) of [bold]{escape(assignment.name)}[/] "
                  f"on {device} with {workers}, {sandbox}")
    with BatchProgress(0) as progress:
        report = grade_into(assignment, submissions, out, settings, on_result=progress, on_start=progress.begin,
                            on_ready=on_ready)
    if report.skipped:
        console.print(f"skipped {len(report.skipped)} already graded (use --force to grade again)")
    print_gradebook(report.gradebook)
    blank = assignment.root / BLANK_NAME
    instructor_report = write_report(out, blank if blank.is_file() else None, assignment.name)
    print_summary(report.graded, time.perf_counter() - start, len(report.skipped))
    console.print(f"  gradebook: {out / GRADEBOOK}\n  results:   {out / RESULTS_DIR}/\n"
                  f"  feedback:  {out / FEEDBACK_DIR}/ (for students)\n"
                  f"  instructor: {out / INSTRUCTOR_DIR}/ (everything, integrity findings included)\n"
                  f"  report:    {instructor_report} (distributions, diagnoses, flags, similar pairs)", markup=False)
    return report


def grade_into(assignment: Assignment, submissions: Iterable[Submission | Path], out: Path, settings: GradeSettings,
               on_result: Callable[[SubmissionResult], None] | None = None,
               on_start: Callable[[int], None] | None = None,
               on_ready: Callable[[], None] | None = None) -> BatchReport:
    """Grade a batch into `out`: what the records there do not hold for the same notebook (all with `force`)."""
    return grade_batch(assignment, submissions, settings, Outbox(out, assignment.config, assignment.fingerprint()), on_result, on_start,
                       on_ready)
