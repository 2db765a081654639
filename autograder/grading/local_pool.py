"""The local executor: worker processes on this machine, each grading one submission at a time.

With one job, submissions are graded in this process, the next one's sandbox and kernel prepared while
the current one is graded (`Prefetch`). With more, each worker is a process of its own, forked from a
server that imported the grader once, holding one task at a time over its own pipe; so when a worker
dies, the submission it held is known exactly, and only that one is charged: it is graded again on a
fresh worker (`RETRIES`), then gets an `error` row. (A `ProcessPoolExecutor` breaks as a whole when one
worker dies and fails every task in flight, so it is not used.) All workers share one zygote, started
by this process while they start.
"""

from __future__ import annotations

import os
import signal
from collections import defaultdict, deque
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..build.assignment import BUNDLE_SOLUTION, Assignment, load_assignment
from ..config import GradeSettings
from ..kernel.isolation import get_isolation
from ..kernel.prefetch import Prefetch
from ..kernel.zygote import notebook_modules, start_zygote
from ..kernel.machine import resolved_device
from .pipeline import kernel_spec, warm_up_in_background
from .submissions import Submission
from .worker import RETRIES, Finish, describe, grade_safely, grader_failed, worker_died
from .warm import warm_context

Task = tuple[Submission, GradeSettings]
STOP_GRACE = 5.0  # seconds an idle worker has to exit when told to, before it is terminated


class LocalPool:
    name = "local"

    def __init__(self, settings: GradeSettings):
        self.settings = settings
        self.workers: list[Worker] = []
        self.current: Submission | None = None  # with one job: the submission this process is grading

    def check(self) -> None:
        resolved_device(self.settings)  # a wrong device name fails before any work starts
        get_isolation(self.settings.isolation).check()  # so does a host that cannot isolate submissions

    def running(self) -> dict[str, int]:
        if self.current is not None:
            return {self.current.name: os.getpid()}
        return {w.task[0].name: w.process.pid for w in list(self.workers) if w.task is not None}

    def run(self, assignment: Assignment, submissions: list[Submission], finish: Finish) -> None:
        if not submissions:
            return
        zygote = start_zygote(kernel_spec(assignment, self.settings),  # imports while the workers start
                              notebook_modules(assignment.root / BUNDLE_SOLUTION))
        try:
            shared = replace(self.settings, zygote=zygote.address)
            gpus = gpu_count(self.settings)
            tasks = [(each, replace(shared, gpu=i % gpus) if gpus > 1 else shared)
                     for i, each in enumerate(submissions)]
            if self.settings.jobs <= 1:
                warm_up_in_background(self.settings)
                self.grade_here(assignment, tasks, finish)
            else:
                self.grade_in_workers(assignment, tasks, finish)
        finally:
            zygote.close()

    def grade_here(self, assignment: Assignment, tasks: list[Task], finish: Finish) -> None:
        with Prefetch() as prefetch:  # the next sandbox and kernel start while this submission is graded
            for i, (submission, settings) in enumerate(tasks):
                if i == 0:  # asked for first, so the first kernel the zygote forks is the first submission's
                    prefetch.prepare(submission.path, assignment.student_files, kernel_spec(assignment, settings))
                if i + 1 < len(tasks):
                    following, its_settings = tasks[i + 1]
                    prefetch.prepare(following.path, assignment.student_files, kernel_spec(assignment, its_settings))
                self.current = submission
                try:
                    result = grade_safely(assignment, submission, settings, prefetch)
                finally:
                    self.current = None
                finish(result)

    def grade_in_workers(self, assignment: Assignment, tasks: list[Task], finish: Finish) -> None:
        pending = deque(tasks)
        deaths: dict[Submission, list[str]] = defaultdict(list)
        context = warm_context(__name__)  # workers forked from a server that imported the grader once
        try:
            self.workers = [Worker(context, assignment.root) for _ in range(min(self.settings.jobs, len(pending)))]
            while True:
                for worker in list(self.workers):
                    while worker.task is None and (worker.ahead or pending):
                        task = worker.ahead or pending.popleft()
                        worker.ahead = None
                        following = pending.popleft() if pending else None
                        if not worker.give(task, following):  # it had died idle: nothing to charge
                            pending.extendleft(t for t in (following, task) if t is not None)
                            worker = self.replace(worker, context, assignment.root)
                busy = [w for w in self.workers if w.task is not None]
                if not busy:
                    return
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in busy:
                    reply = worker.reply()
                    if reply is not None:
                        submission, _ = worker.task
                        worker.task = None
                        kind, value = reply
                        finish(value if kind == "result" else grader_failed(assignment, submission, value))
                    elif not worker.process.is_alive():
                        task, worker.task = worker.task, None
                        if worker.ahead is not None:  # only prepared for: back to the queue, charged nothing
                            pending.appendleft(worker.ahead)
                            worker.ahead = None
                        deaths[task[0]].append(f"worker {worker.process.pid}: {exit_reason(worker.process)}")
                        if len(deaths[task[0]]) > RETRIES:
                            finish(worker_died(assignment, task[0], deaths[task[0]]))
                        else:
                            pending.appendleft(task)
                        if pending:
                            self.replace(worker, context, assignment.root)
                        else:
                            worker.stop()
                            self.workers.remove(worker)
        finally:
            for worker in self.workers:
                worker.stop()
            self.workers = []

    def replace(self, dead: "Worker", context: Any, root: Path) -> "Worker":
        dead.stop()
        fresh = self.workers[self.workers.index(dead)] = Worker(context, root)
        return fresh


class Worker:
    """One worker process, the pipe to it, the task it holds (None: idle), and the one it will be given next
    (`ahead`: its sandbox and kernel are prepared while `task` is graded; charged nothing if the worker dies)."""

    def __init__(self, context: Any, root: Path):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, root), name="torchgrade-worker")
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.ahead: Task | None = None

    def give(self, task: Task, following: Task | None = None) -> bool:
        """Hand the worker a task, and say which one comes after it; False if it is gone (then it holds nothing)."""
        if not self.process.is_alive():
            return False
        try:
            self.conn.send((task, following))
        except OSError:
            return False
        self.task, self.ahead = task, following
        return True

    def reply(self) -> tuple[str, Any] | None:
        """The worker's answer, if one has arrived whole; None otherwise (also when the worker died)."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None

    def stop(self) -> None:
        """Idle: told to exit; busy (an interrupted batch) or deaf: terminated, then killed."""
        if self.process.is_alive() and self.task is None:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(STOP_GRACE)
        for end in (self.process.terminate, self.process.kill):
            if self.process.is_alive():
                end()
                self.process.join(STOP_GRACE)
        self.conn.close()


def serve(conn: Connection, root: Path) -> None:
    """A worker: grade the tasks that come over `conn` one at a time, until told to stop or the grader is gone;
    each comes with the one that will follow it, whose sandbox and kernel are prepared meanwhile."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the grader, which stops its workers
    assignment: Assignment | None = None
    with Prefetch() as prefetch:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message is None:
                return
            task, following = message
            try:
                if assignment is None:
                    import torch

                    torch.set_num_threads(1)  # a worker's checks are small; the cores are the kernels'
                    warm_up_in_background(task[1])  # while this worker waits for its first kernel
                    assignment = load_assignment(root)
                    prefetch.prepare(task[0].path, assignment.student_files, kernel_spec(assignment, task[1]))
                if following is not None:
                    prefetch.prepare(following[0].path, assignment.student_files, kernel_spec(assignment, following[1]))
                reply: tuple[str, Any] = ("result", grade_safely(assignment, *task, prefetch))
            except Exception as exc:  # the assignment would not load here: an `error` row, the worker goes on
                reply = ("error", describe(exc))
            try:
                conn.send(reply)
            except OSError:
                return


def exit_reason(process: Any) -> str:
    process.join(1.0)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def gpu_count(settings: GradeSettings) -> int:
    """How many GPUs the batch spreads its kernels over (submission i → GPU i mod n)."""
    if resolved_device(settings) != "cuda":
        return 0
    import torch

    return torch.cuda.device_count()
