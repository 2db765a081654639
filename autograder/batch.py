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
from typing import Callable

import pandas as pd

from .assignment import Assignment, load_assignment
from .config import GradeSettings
from .kernel.isolation import get_isolation
from .kernel.session import Prefetch, start_zygote
from .pipeline import grade_submission, kernel_spec
from .report.gradebook import write_gradebook, write_result
from .report.records import Records, notebook_digest
from .results import SubmissionResult

_WORKER_ASSIGNMENTS: dict[Path, Assignment] = {}


@dataclass
class BatchReport:
    gradebook: pd.DataFrame
    graded: list[SubmissionResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def grade_batch(assignment: Assignment, submissions: list[Path], out: Path, settings: GradeSettings,
                on_result: Callable[[SubmissionResult], None] | None = None) -> BatchReport:
    settings.resolved_device()  # a wrong device name fails before any work starts
    get_isolation(settings.isolation).check()  # so does a host that cannot isolate submissions
    records = Records(out)
    digests = {path.stem: notebook_digest(path) for path in submissions}
    todo, skipped = [], []
    for path in submissions:
        if not settings.force and records.done(path.stem, digests[path.stem]):
            skipped.append(path.stem)
        else:
            todo.append(path)
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
    work = [(path, replace(shared, gpu=i % gpus) if gpus > 1 else shared) for i, path in enumerate(todo)]
    try:
        if settings.jobs <= 1:
            with Prefetch() as prefetch:  # the next sandbox and kernel start while this submission is graded
                for i, (path, each) in enumerate(work):
                    if i + 1 < len(work):
                        prefetch.prepare(work[i + 1][0], assignment.student_files,
                                         kernel_spec(assignment, work[i + 1][1]))
                    finish(grade_safely(assignment, path, each, prefetch))
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


def grade_safely(assignment: Assignment, path: Path, settings: GradeSettings,
                 prefetch: Prefetch | None = None) -> SubmissionResult:
    """Grade one submission; a failure of the grader itself becomes an `error` row."""
    try:
        return grade_submission(path, assignment, settings, prefetch=prefetch)
    except Exception as exc:  # the batch goes on; the row says what went wrong
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return SubmissionResult.ungraded(path.stem, "error", f"the grader failed: {detail}",
                                         assignment.config, str(path))


def _worker_grade(root: Path, path: Path, settings: GradeSettings) -> SubmissionResult:
    if root not in _WORKER_ASSIGNMENTS:
        import torch

        torch.set_num_threads(1)  # a worker's checks are small; the cores are the kernels'
        _WORKER_ASSIGNMENTS[root] = load_assignment(root)
    return grade_safely(_WORKER_ASSIGNMENTS[root], path, settings)


def run_pool(assignment: Assignment, work: list[tuple[Path, GradeSettings]], jobs: int,
             finish: Callable[[SubmissionResult], None], retries: int = 1) -> None:
    pending = list(work)
    attempts: dict[Path, int] = {}
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the workers' server when it starts
    context = multiprocessing.get_context("forkserver")  # workers forked from a server that imported once,
    context.set_forkserver_preload(["autograder.batch"])  # before any torch computation: no forked OpenMP pool
    while pending:
        broken: list[tuple[Path, GradeSettings]] = []
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=context) as pool:
            futures: dict[Future, tuple[Path, GradeSettings]] = {
                pool.submit(_worker_grade, assignment.root, path, each): (path, each) for path, each in pending}
            pending = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    item = futures.pop(future)
                    try:
                        finish(future.result())
                    except BrokenProcessPool:
                        broken.append(item)
        for path, each in broken:
            attempts[path] = attempts.get(path, 0) + 1
            if attempts[path] > retries:
                finish(SubmissionResult.ungraded(path.stem, "error", "the grading worker process died",
                                                 assignment.config, str(path)))
            else:
                pending.append((path, each))
