"""Grading many submissions: N sandboxes at once, results recorded as each one finishes.

Each submission is graded in a worker process (the student's code runs further down, in a
sandboxed kernel forked from the worker's zygote). A result is recorded by this process alone
the moment it arrives (`report.records`), then its files and the gradebook are written from the
records; a rerun skips a submission the records hold for the same notebook, unless `force`. A
grader failure on one submission becomes an `error` row; a worker process that dies is
replaced and its unfinished work retried once. Isolation is checked before any work starts:
where it cannot be set up, the batch refuses (fails closed) unless isolation is "none".
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .assignment import Assignment, load_assignment
from .config import GradeSettings
from .kernel.isolation import get_isolation
from .kernel.session import Prefetch, start_zygote
from .pipeline import grade_submission, kernel_spec
from .report.gradebook import write_gradebook, write_result
from .report.records import Records, notebook_digest
from .results import SubmissionResult
from .submissions import Submission, as_submission

_WORKER_ASSIGNMENTS: dict[Path, Assignment] = {}


@dataclass
class BatchReport:
    gradebook: pd.DataFrame
    graded: list[SubmissionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def grade_batch(assignment: Assignment, submissions: Iterable[Submission | Path], out: Path, settings: GradeSettings,
                on_result: Callable[[SubmissionResult], None] | None = None) -> BatchReport:
    settings.resolved_device()  # a wrong device name fails before any work starts
    get_isolation(settings.isolation).check()  # so does a host that cannot isolate submissions
    records = Records(out)
    submissions = [as_submission(s) for s in submissions]
    digests = {s.name: notebook_digest(s.path) for s in submissions}
    todo, skipped = [], []
    for each in submissions:
        if not settings.force and records.done(each.name, digests[each.name]):
            skipped.append(each.name)
        else:
            todo.append(each)
    report = BatchReport(write_gradebook(out, assignment.config, records.results()), skipped=skipped)
    gpus = gpu_count(settings)

    def finish(result: SubmissionResult) -> None:
        records.add(result, digests.get(result.submission, ""))
        report.gradebook = write_gradebook(out, assignment.config, records.results())
        write_result(out, result, assignment.config)
        report.graded.append(result)
        if on_result:
            on_result(result)

    zygote = start_zygote(kernel_spec(assignment, settings)) if todo else None  # imports while workers start
    shared = replace(settings, zygote=zygote.address) if zygote else settings
    work = [(each, replace(shared, gpu=i % gpus) if gpus > 1 else shared) for i, each in enumerate(todo)]
    try:
        if settings.jobs <= 1:
            with Prefetch() as prefetch:  # the next sandbox and kernel start while this submission is graded
                for i, (submission, each) in enumerate(work):
                    if i + 1 < len(work):
                        prefetch.prepare(work[i + 1][0].path, assignment.student_files,
                                         kernel_spec(assignment, work[i + 1][1]))
                    finish(grade_safely(assignment, submission, each, prefetch))
        else:
            run_pool(assignment, work, settings.jobs, finish)
    finally:
        records.close()
        if zygote is not None:
            zygote.close()
    return report


def gpu_count(settings: GradeSettings) -> int:
    """How many GPUs the batch spreads its kernels over (submission i → GPU i mod n)."""
    if settings.resolved_device() != "cuda":
        return 0
    import torch

    return torch.cuda.device_count()


def grade_safely(assignment: Assignment, submission: Submission, settings: GradeSettings,
                 prefetch: Prefetch | None = None) -> SubmissionResult:
    """Grade one submission; a failure of the grader itself becomes an `error` row."""
    try:
        return grade_submission(submission.path, assignment, settings, prefetch=prefetch, name=submission.name)
    except Exception as exc:  # the batch goes on; the row says what went wrong
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return SubmissionResult.ungraded(submission.name, "error", f"the grader failed: {detail}",
                                         assignment.config, str(submission.path))


def _worker_grade(root: Path, submission: Submission, settings: GradeSettings) -> SubmissionResult:
    if root not in _WORKER_ASSIGNMENTS:
        import torch

        torch.set_num_threads(1)  # a worker's checks are small; the cores are the kernels'
        _WORKER_ASSIGNMENTS[root] = load_assignment(root)
    return grade_safely(_WORKER_ASSIGNMENTS[root], submission, settings)


def run_pool(assignment: Assignment, work: list[tuple[Submission, GradeSettings]], jobs: int,
             finish: Callable[[SubmissionResult], None], retries: int = 1) -> None:
    pending = list(work)
    attempts: dict[Submission, int] = {}
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the workers' server when it starts
    context = multiprocessing.get_context("forkserver")  # workers forked from a server that imported once,
    context.set_forkserver_preload(["autograder.batch"])  # before any torch computation: no forked OpenMP pool
    while pending:
        broken: list[tuple[Submission, GradeSettings]] = []
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=context) as pool:
            futures: dict[Future, tuple[Submission, GradeSettings]] = {
                pool.submit(_worker_grade, assignment.root, item, each): (item, each) for item, each in pending}
            pending = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    item = futures.pop(future)
                    try:
                        finish(future.result())
                    except BrokenProcessPool:
                        broken.append(item)
        for submission, each in broken:
            attempts[submission] = attempts.get(submission, 0) + 1
            if attempts[submission] > retries:
                finish(SubmissionResult.ungraded(submission.name, "error", "the grading worker process died",
                                                 assignment.config, str(submission.path)))
            else:
                pending.append((submission, each))
