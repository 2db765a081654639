"""Grading one submission: sandbox → execute → probe → check → score, in one straight line."""

from __future__ import annotations

import time
from pathlib import Path

from .assignment import Assignment
from .checks import Check, Outcome, run_check
from .config import GradeSettings
from .errors import InvalidSubmission
from .execute import ExecutionReport, execute_notebook
from .notebook import read_submission
from .probe import KernelStudent
from .results import SubmissionResult, score
from .sandbox import KernelSpec, Sandbox, open_sandbox


def grade_submission(path: Path, assignment: Assignment, settings: GradeSettings) -> SubmissionResult:
    start = time.perf_counter()
    name = path.stem
    try:
        nb = read_submission(path)
    except InvalidSubmission as exc:
        return SubmissionResult.ungraded(name, "invalid", exc.message, assignment.config, str(path))
    spec = kernel_spec(assignment, settings)
    with open_sandbox(path, assignment.student_files, spec) as box:
        report = execute_notebook(box, nb)
        outcomes = probe_and_check(box, assignment, spec)
    result = SubmissionResult(
        submission=name,
        status=report.status,
        questions=score(assignment.config, outcomes),
        message=report.message,
        path=str(path),
        cell_time=report.cell_seconds,
        cell_errors=cell_errors(report),
        device=spec.device,
    )
    result.execution_time = time.perf_counter() - start
    return result


def kernel_spec(assignment: Assignment, settings: GradeSettings) -> KernelSpec:
    limits = assignment.config.limits
    if settings.timeout is not None:
        limits = type(limits)(**{**vars(limits), "notebook_timeout": settings.timeout})
    return KernelSpec(limits=limits, threads=settings.kernel_threads(), device=settings.resolved_device(),
                      seed=assignment.config.seed)


def probe_and_check(box: Sandbox, assignment: Assignment, spec: KernelSpec) -> list[Outcome]:
    """Run every check against the student's kernel; the reference stays in this process."""
    st = KernelStudent(box.kernel.run_silently, box.private, spec.limits.probe_timeout, spec.device)
    return [run_check(c, st, assignment.reference, check_seed_base(c, assignment)) for c in assignment.checks.checks]


def check_seed_base(check: Check, assignment: Assignment) -> int:
    return assignment.config.seed if check.public else assignment.config.hidden_seed


def cell_errors(report: ExecutionReport) -> list[str]:
    return [f"{c.label}: {c.error}" for c in report.errors]
