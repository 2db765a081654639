"""A batch on the terminal: `grade_batch` with progress, then the gradebook, the report and where files are."""

from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape

from ..build.bundles import BLANK_NAME
from ..config import GradeSettings
from ..grading.batch import BatchReport
from ..report.outbox import grade_into
from ..report.gradebook import GRADEBOOK
from ..report.writers import FEEDBACK_DIR, INSTRUCTOR_DIR, RESULTS_DIR
from ..report.instructor import write_report
from ..report.terminal import BatchProgress, console, print_gradebook, print_summary


def run_batch(assignment, submissions, out: Path, settings: GradeSettings) -> BatchReport:
    start = time.perf_counter()
    sandbox = "in sandboxes" if settings.isolation != "none" else "[yellow]without isolation[/]"
    workers = (f"the Dask cluster at {settings.scheduler}" if settings.scheduler else f"{settings.jobs} job(s)"
               + (" on a Dask LocalCluster" if settings.executor == "dask" else ""))
    device = settings.device if settings.executor == "dask" else settings.resolved_device()  # workers resolve it
    console.print(f"grading {len(submissions)} submission(s) of [bold]{escape(assignment.name)}[/] "
                  f"on {device} with {workers}, {sandbox}")
    with BatchProgress(0) as progress:
        report = grade_into(assignment, submissions, out, settings, on_result=progress, on_start=progress.begin)
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
