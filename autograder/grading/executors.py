"""Where a batch's submissions are graded: executors, chosen by name (`--executor`).

An executor grades each submission as one task on a worker process that loads the assignment once and
keeps a warm zygote, and calls `finish(result)` in the calling process once per submission, as results
arrive; the batch records them (`batch.py`). A worker's death is charged to the one submission it was
running, never to the others in flight: that submission is graded again `RETRIES` times, then gets an
`error` row.

- `local` (the default): worker processes on this machine (`local_pool.py`);
- `dask`: the workers of a Dask distributed cluster, or a LocalCluster of `--jobs` processes
  (`dask_cluster.py`; dask is imported only when this one is chosen).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from typing import Any, Callable, Protocol

from ..assignment import Assignment
from ..config import GradeSettings
from ..errors import ConfigError
from ..kernel.session import Prefetch
from ..pipeline import grade_submission
from ..results import SubmissionResult
from ..submissions import Submission

RETRIES = 1  # a submission whose worker died under it is graded again this many times, then gets an `error` row

Finish = Callable[[SubmissionResult], None]


class Executor(Protocol):
    def check(self) -> None:
        """Fail before any work where submissions cannot be graded as the settings ask (device, isolation)."""

    def run(self, assignment: Assignment, submissions: list[Submission], finish: Finish) -> None:
        """Grade every submission; `finish` is called here, once per submission, as results arrive."""

    def running(self) -> dict[str, int]:
        """What the workers are grading now: submission name → the process id of the worker grading it."""


def local_pool(settings: GradeSettings) -> Executor:
    from .local_pool import LocalPool

    return LocalPool(settings)


def dask_cluster(settings: GradeSettings) -> Executor:
    try:
        from .dask_cluster import DaskCluster
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("dask", "distributed"):
            raise ConfigError("--executor dask needs Dask distributed: pip install 'torchgrade[dask]'") from exc
        raise
    return DaskCluster(settings)


EXECUTORS: dict[str, Callable[[GradeSettings], Executor]] = {"local": local_pool, "dask": dask_cluster}


def get_executor(settings: GradeSettings) -> Executor:
    try:
        factory = EXECUTORS[settings.executor]
    except KeyError:
        raise ConfigError(f"unknown executor {settings.executor!r}; known: {', '.join(EXECUTORS)}") from None
    return factory(settings)


def warm_context(*modules: str) -> Any:
    """The "forkserver" multiprocessing context whose server, when it starts, imports the grader (torch and nbclient
    included) and `modules` once, before any torch computation: worker processes forked from it start warm, with no
    forked OpenMP pool. (One server per process: whoever starts it first sets what it imported.)"""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the server when it starts
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *modules])
    return context


def grade_safely(assignment: Assignment, submission: Submission, settings: GradeSettings,
                 prefetch: Prefetch | None = None) -> SubmissionResult:
    """Grade one submission; a failure of the grader itself becomes an `error` row."""
    try:
        return grade_submission(submission.path, assignment, settings, prefetch=prefetch, name=submission.name)
    except Exception as exc:  # the batch goes on; the row says what went wrong
        return grader_failed(assignment, submission, describe(exc))


def grader_failed(assignment: Assignment, submission: Submission, detail: str) -> SubmissionResult:
    return SubmissionResult.ungraded(submission.name, "error", f"the grader failed: {detail}", assignment.config,
                                     str(submission.path))


def worker_died(assignment: Assignment, submission: Submission, deaths: list[str]) -> SubmissionResult:
    """The row of a submission whose worker died under it more than `RETRIES` times."""
    return SubmissionResult.ungraded(
        submission.name, "error", f"the grading worker process died while grading it, {len(deaths)} times "
        f"({'; '.join(deaths)})", assignment.config, str(submission.path))


def describe(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()
