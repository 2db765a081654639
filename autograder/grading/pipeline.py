"""Grading one submission: read → sandbox → execute → probe and check → score, in one straight line."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import nbformat

from ..build.assignment import Assignment
from ..checks import Context, Outcome, run_checks
from ..checks.figures import run_figures
from ..checks.figures import warm_up as warm_figures
from ..checks.student import ExplainedStudent
from ..config import GradeSettings
from ..errors import InvalidSubmission
from ..kernel.execute import ExecutionReport, execute_notebook
from ..kernel.integrity import Finding, needs_watch, scan_source
from ..kernel.probe import KernelStudent, Student
from ..kernel.prefetch import Prefetch
from ..kernel.session import Session
from ..kernel.spec import KernelSpec, kernel_spec
from ..build.notebook import SETUP_SOURCE, read_submission
from ..outcomes import SubmissionResult, score

Prober = Callable[[Student, Context], list[Outcome]]


def grade_submission(path: Path, assignment: Assignment, settings: GradeSettings,
                     prober: Prober | None = None, prefetch: Prefetch | None = None,
                     name: str | None = None) -> SubmissionResult:
    """Grade one notebook, known as `name` (default: its file name). `prober` replaces the default step "run every
    check of the assignment"; `prefetch` may hold this notebook's sandbox and kernel, prepared while the previous
    one was graded."""
    start = time.perf_counter()
    name = name or path.stem
    spec = kernel_spec(assignment, settings)
    try:
        nb = read_submission(path)
    except InvalidSubmission as exc:
        if prefetch:  # a sandbox and kernel prepared for it are not needed
            prefetch.discard(path, assignment.student_files, spec)
        return SubmissionResult.ungraded_row(name, "invalid", exc.message, assignment.config.questions, str(path),
                                             phase="read")
    data = assignment.student_files / "data" if assignment.student_files else None
    ctx = Context(assignment.config, spec.device, assignment.hidden, data)
    prober = prober or all_checks(assignment)
    flags = scan_source(nb, trusted=[SETUP_SOURCE])  # before any kernel runs: parsing holds the interpreter's lock
    session = prefetch.session(path, assignment.student_files, spec) if prefetch else Session(
        path, assignment.student_files, spec)
    with session:
        if prefetch:  # this kernel runs: the next one may start
            prefetch.release()
        report = execute_notebook(session, nb)
        st = KernelStudent(session, spec.limits.probe_timeout, spec.device, watch=needs_watch(flags))
        # the student's figures first, in a kernel that has seen no check's input yet: none can show a hidden one
        figures = draw_figures(assignment, session, spec, ctx, st.watch, "student") if settings.figures else []
        outcomes = prober(ExplainedStudent.of(st, failed_cells(nb, report)), ctx)
        figures += draw_figures(assignment, session, spec, ctx, st.watch, "instructor") if settings.figures else []
    flags += session.findings
    flags += [Finding("malformed-answer", "kernel", m) for m in st.malformed]
    flags += [Finding("check-error", "grader", f"{o.question}/{o.check}: {o.message}") for o in outcomes
              if o.status == "error"]  # a grader fault is never billed to the student silently
    return SubmissionResult(
        submission=name,
        status=report.status,
        questions=score(assignment.config.questions, outcomes),
        message=stop_message(report, session),
        path=str(path),
        execution_time=time.perf_counter() - start,
        cell_time=report.cell_seconds,
        cell_errors=cell_errors(report),
        device=spec.device,
        flags=[f.as_dict() for f in flags],
        memory_peak_mb=round(session.memory_peak / 2**20, 1),
        restarts=session.restarts,
        figures=figures,
        phase=stop_phase(report, session),
        isolation=session.isolation_text,
    )


def warm_up(figures: bool = True) -> None:
    """What a grader's first submission would pay for on its own, paid now: nbformat's validator used once, and with
    figures on, a small figure drawn (`checks.figures.warm_up`). (Not IPython's cell transformer: only a cell with a
    magic needs it, see `integrity.python_source`.)"""
    try:
        nbformat.reads(nbformat.writes(nbformat.v4.new_notebook()), as_version=4)
    except Exception:  # each is tried again, for real, by the submission that needs it
        pass
    if figures:
        warm_figures()


def warm_up_in_background(settings: GradeSettings) -> threading.Thread:
    """`warm_up` on a thread, while this process waits for its first kernel (the workers' server has done it for
    them before they were forked: `prewarm.py`)."""
    thread = threading.Thread(target=warm_up, args=(settings.figures,), name="torchgrade-warm-up", daemon=True)
    thread.start()
    return thread


def all_checks(assignment: Assignment) -> Prober:
    """Every check of the assignment against its reference; the reference stays in this process."""
    return lambda st, ctx: run_checks(assignment.checks.checks, st, assignment.reference, ctx)


def draw_figures(assignment: Assignment, session: Session, spec: KernelSpec, ctx: Context,
                 watch: bool, audience: str) -> list[dict]:
    """The assignment's figures for `audience` (checks/figures.py) on the submission's kernel: the student's before
    any check (so no hidden input was ever in the kernel), the instructor's after them; through a student side of
    their own, so that nothing they ask changes an outcome (a malformed answer to a figure leaves the figure out,
    unflagged; what student code does meanwhile is watched as ever), and on time of their own: the time they take
    is not taken from the checks' budget."""
    specs = [f for f in assignment.figures.figures if f.audience == audience]
    if not specs or session.broken:
        return []
    st = KernelStudent(session, spec.limits.probe_timeout, spec.device, watch=watch)
    with session.budget.paused():
        return run_figures(specs, st, assignment.reference, ctx)


def stop_message(report: ExecutionReport, session: Session) -> str:
    """Why the notebook stopped, and, where its kernel could not be restored afterwards (a failed replay), that
    the checks after that point were not run: said once here, not only as each later check's failure."""
    broken = f"the kernel could not be restored, so the checks after that were not run: {session.broken}" \
        if session.broken else ""
    return "; ".join(m for m in (report.message, broken) if m)


def stop_phase(report: ExecutionReport, session: Session) -> str:
    """Where grading was stopped (outcomes.PHASES): while executing the notebook, or while probing it; "" if not."""
    if report.status != "ok":
        return "execute"
    return "probe" if session.broken else ""


def cell_errors(report: ExecutionReport) -> list[str]:
    return [f"{c.label}: {c.error}" for c in report.errors]


def failed_cells(nb, report: ExecutionReport) -> list[tuple[str, str, str]]:
    """(source, what happened, its error) of each cell that raised, so that a check can say why a name it defines is
    missing, and what to do."""
    return [(nb.cells[c.index].get("source", ""), f"{c.label} raised {c.error}", c.error) for c in report.errors]
