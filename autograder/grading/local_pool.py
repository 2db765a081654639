"""The local executor: worker processes on this machine, each grading one submission at a time.

With one job, submissions are graded in this process, the next one's sandbox and kernel prepared while
the current one is graded (`Prefetch`). With more, each worker is a process of its own, forked from a
server that imported the grader once (`warm.py`), holding one task at a time over its own pipe; so when a worker
dies, the submission it held is known exactly, and only that one is charged: it is graded again on a
fresh worker (`RETRIES`), then gets an `error` row. (A `ProcessPoolExecutor` breaks as a whole when one
worker dies and fails every task in flight, so it is not used.) All workers share one zygote, started
by this process while they start.

With more than one job, this process only hands out work and keeps results: grading on the CPU from a bundle, it
never imports torch or the instructor's checks (a GPU batch asks torch for its devices; a source folder is built
into a bundle here first). Each worker loads them as it starts and says first whether they loaded; where they do
not, the batch fails before it starts, naming the file, as it does with one job. So before the first result the
machine's cores import torch twice (the zygote, the workers' server), not three times.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import defaultdict, deque
from dataclasses import replace
from importlib import import_module
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..build.assignment import BUNDLE_SOLUTION, Assignment
from ..config import GradeSettings
from ..errors import ConfigError, TorchgradeError
from ..kernel.heap import imports_without_collection
from ..kernel.isolation import get_isolation
from ..kernel.machine import resolved_device
from ..kernel.spec import kernel_spec
from ..kernel.zygote import Zygote, notebook_modules, start_zygote
from .submissions import Submission
from .worker import RETRIES, Finish, describe, grader_failed, worker_died
from .warm import warm_context

Task = tuple[Submission, GradeSettings]
STOP_GRACE = 5.0  # seconds a worker has to end once terminated, before it is killed
EXIT_GRACE = 60.0  # seconds an idle worker told to exit has to end its last sandboxes (`isolation.finish_closing`)
HELLO = ("ready", "failed")  # a worker's first word: the assignment loaded, or (message, path) of why not


class LocalPool:
    name = "local"

    def __init__(self, settings: GradeSettings):
        self.settings = settings
        self.workers: list[Worker] = []
        self.current: Submission | None = None  # with one job: the submission this process is grading
        self.zygote: Zygote | None = None
        self.context: Any = None
        self.shared = settings  # the settings every task shares: the zygote's address added once it starts
        self.likely: list[Submission] | None = None
        self.prefetch: Any = None  # with one job: the batch's `Prefetch`, made as it starts (`prepare_first`)
        self.first: tuple | None = None  # the prefetch key of the submission it prepared first

    def expect(self, likely: list[Submission]) -> None:
        """What the batch will likely grade, in order (`first_tasks`)."""
        self.likely = likely

    def check(self, assignment: Assignment) -> None:
        """Fail before any work where the device or isolation cannot be had, or the checks do not load where they
        run (here with one job, in each worker with more: the zygote and the workers start now, for the batch)."""
        resolved_device(self.settings)  # a wrong device name fails before any work starts
        get_isolation(self.settings.isolation).check()  # so does a host that cannot isolate submissions
        self.start(assignment)

    def start(self, assignment: Assignment) -> None:
        """The zygote, once; then the assignment loaded here (one job), or workers that loaded it (more: started
        again by a later `run` once the last one's workers are gone)."""
        if self.zygote is None:
            self.zygote = start_zygote(kernel_spec(assignment, self.settings),  # imports while the workers start
                                       notebook_modules(assignment.root / BUNDLE_SOLUTION))
            self.shared = replace(self.settings, zygote=self.zygote.address)
        if self.settings.jobs <= 1:
            self.prepare_first(assignment)
            if f"{__package__}.pipeline" not in sys.modules:  # (`run` starts it again: imported and frozen once)
                with imports_without_collection():  # graded in this process, which imports torch and the grader now
                    import_module(f"{__package__}.pipeline")
            assignment.load()  # (the instructor's code, with the collector on)
            return
        if self.workers:
            return
        self.context = warm_context(__name__)  # workers forked from a server that imported the grader once
        firsts, self.likely = self.first_tasks(self.likely), None  # (a later batch's workers are told nothing)
        for i in range(self.settings.jobs):  # each kept as it starts
            self.workers.append(Worker(self.context, assignment.root, self.shared, firsts[i] if i < len(firsts)
                                       else None))
        for worker in self.workers:
            worker.wait_hello()
        failed = next((w.hello[1] for w in self.workers if w.hello and w.hello[0] == "failed"), None)
        if failed is not None:
            raise ConfigError(*failed)
        for worker in self.workers:
            if worker.hello is None:  # it died loading them: the instructor's code exited, crashed or ran out of memory
                raise ConfigError(f"a grading worker {exit_reason(worker.process)} while it loaded the checks",
                                  assignment.root / "checks")

    def prepare_first(self, assignment: Assignment) -> None:
        """With one job: the sandbox and kernel of the submission the batch will likely grade first start preparing
        now, before this process imports torch and the checks (a second or two), so that the kernel is up when
        they are. Only the configuration and the zygote's address are needed. (A resumed batch may skip it:
        `grade_here` then drops it.)"""
        from ..kernel.prefetch import Prefetch

        likely, self.likely = self.likely, None
        if self.prefetch is not None:
            return
        self.prefetch = Prefetch()
        if likely and resolved_device(self.settings) == "cpu":
            self.first = (likely[0].path, assignment.student_files, kernel_spec(assignment, self.shared))
            self.prefetch.prepare(*self.first)

    def first_tasks(self, likely: list[Submission] | None) -> list[Task]:
        """What each worker will likely grade first, as far as is known before the batch reads its records
        (`grade_in_workers` hands out two at a time, in order): its sandbox and kernel start as the worker does,
        while it loads the checks. A resumed batch may skip those; the worker then drops what it prepared."""
        if not likely or resolved_device(self.settings) != "cpu":
            return []
        return [(each, self.shared) for each in likely[::2][:self.settings.jobs]]

    def close(self) -> None:
        try:
            self.close_workers()
            if self.prefetch is not None:  # a batch that did not run: what it prepared is ended
                prefetch, self.prefetch, self.first = self.prefetch, None, None
                prefetch.close()
        finally:
            if self.zygote is not None:
                self.zygote.close()
                self.zygote = None

    def close_workers(self) -> None:
        for worker in self.workers:  # all told at once, then each waited for
            worker.ask_to_stop()
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def running(self) -> dict[str, int]:
        if self.current is not None:
            return {self.current.name: os.getpid()}
        return {w.task[0].name: w.process.pid for w in list(self.workers) if w.task is not None}

    def run(self, assignment: Assignment, submissions: list[Submission], finish: Finish) -> None:
        if not submissions:
            return
        self.start(assignment)
        gpus = gpu_count(self.settings)
        tasks = [(each, replace(self.shared, gpu=i % gpus) if gpus > 1 else self.shared)
                 for i, each in enumerate(submissions)]
        if self.settings.jobs <= 1:
            from .pipeline import warm_up_in_background

            warm_up_in_background(self.settings)
            self.grade_here(assignment, tasks, finish)
        else:
            self.grade_in_workers(assignment, tasks, finish)

    def grade_here(self, assignment: Assignment, tasks: list[Task], finish: Finish) -> None:
        from ..kernel.prefetch import Prefetch
        from .worker import grade_safely

        prefetch, guess = self.prefetch or Prefetch(), self.first
        self.prefetch, self.first = None, None
        with prefetch:  # the next sandbox and kernel start while this submission is graded
            for i, (submission, settings) in enumerate(tasks):
                if i == 0:  # asked for first, so the first kernel the zygote forks is the first submission's
                    key = (submission.path, assignment.student_files, kernel_spec(assignment, settings))
                    prefetch.prepare(*key)
                    if guess is not None and guess != key:  # the batch had graded it already: not needed
                        prefetch.discard(*guess)
                if i + 1 < len(tasks):
                    following, its_settings = tasks[i + 1]
                    prefetch.prepare(following.path, assignment.student_files, kernel_spec(assignment, its_settings),
                                     hold=i == 0)
                self.current = submission
                try:
                    result = grade_safely(assignment, submission, settings, prefetch)
                finally:
                    self.current = None
                finish(result)

    def grade_in_workers(self, assignment: Assignment, tasks: list[Task], finish: Finish) -> None:
        pending = deque(tasks)
        deaths: dict[Submission, list[str]] = defaultdict(list)
        for surplus in self.workers[len(pending):]:  # a batch smaller than --jobs
            surplus.stop()
        self.workers = self.workers[:len(pending)]
        try:
            while True:
                for worker in list(self.workers):
                    while worker.task is None and (worker.ahead or pending):
                        task = worker.ahead or pending.popleft()
                        worker.ahead = None
                        following = pending.popleft() if pending else None
                        if not worker.give(task, following):  # it had died idle: nothing to charge
                            pending.extendleft(t for t in (following, task) if t is not None)
                            worker = self.replace(worker, assignment.root)
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
                            self.replace(worker, assignment.root)
                        else:
                            worker.stop()
                            self.workers.remove(worker)
        finally:
            self.close_workers()

    def replace(self, dead: "Worker", root: Path) -> "Worker":
        dead.stop()
        fresh = self.workers[self.workers.index(dead)] = Worker(self.context, root, self.shared)
        return fresh


class Worker:
    """One worker process, the pipe to it, the task it holds (None: idle), and the one it will be given next
    (`ahead`: its sandbox and kernel are prepared while `task` is graded; charged nothing if the worker dies)."""

    def __init__(self, context: Any, root: Path, settings: GradeSettings, first: Task | None = None):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, root, settings, first), name="torchgrade-worker")
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.ahead: Task | None = None
        self.hello: tuple[str, Any] | None = None  # its first word (HELLO), once said
        self.stopping = False  # told to exit

    def wait_hello(self) -> None:
        """Until the worker says whether the assignment loaded, or dies first (then the batch does not start)."""
        while self.hello is None and self.process.is_alive():
            wait([self.conn, self.process.sentinel])
            self.reply()  # it holds no work yet: its one word is the hello

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
        """The worker's answer, if one has arrived whole; None otherwise (also when the worker died). Its first
        word (`hello`) is kept, not returned."""
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind not in HELLO:
                    return kind, value
                self.hello = (kind, value)
        except (EOFError, OSError):
            pass
        return None

    def ask_to_stop(self) -> bool:
        """Tell an idle worker that has said its first word to exit; whether it was told."""
        if self.stopping or not (self.process.is_alive() and self.task is None and self.hello is not None):
            return self.stopping
        try:
            self.conn.send(None)
            self.stopping = True
        except OSError:
            pass
        return self.stopping

    def stop(self) -> None:
        """Idle: told to exit, and given the time to end the sandboxes it closed last (`EXIT_GRACE`); busy (an
        interrupted batch), still loading the assignment, or deaf: terminated, then killed."""
        if self.ask_to_stop():
            self.process.join(EXIT_GRACE)
        for end in (self.process.terminate, self.process.kill):
            if self.process.is_alive():
                end()
                self.process.join(STOP_GRACE)
        self.conn.close()


def serve(conn: Connection, root: Path, settings: GradeSettings, likely: Task | None = None) -> None:
    """A worker: load the assignment and say whether it loaded, then grade the tasks that come over `conn` one at a
    time, until told to stop or the grader is gone; each comes with the one that will follow it, whose sandbox and
    kernel are prepared meanwhile (after the first: once its result is sent). The one it will `likely` grade first
    is prepared as it starts, while it loads the checks. (Where the assignment did not load, each task gets an
    `error` row.)"""
    import torch

    from ..build.assignment import load_assignment
    from ..kernel.prefetch import Prefetch
    from .pipeline import warm_up_in_background
    from .worker import grade_safely

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the grader, which stops its workers
    end_with_the_grader()
    torch.set_num_threads(1)  # a worker's checks are small; the cores are the kernels'
    if "autograder.grading.prewarm" not in sys.modules:  # its server warmed up before forking it, as a rule
        warm_up_in_background(settings)
    with Prefetch() as prefetch:
        guess = prepare_likely(prefetch, root, likely)
        assignment: Assignment | None = None
        try:
            assignment = load_assignment(root)
            hello: tuple[str, Any] = ("ready", None)
        except TorchgradeError as exc:
            hello = ("failed", (exc.message, str(exc.path) if exc.path is not None else None))
        except (Exception, SystemExit) as exc:  # the instructor's checks raised, or exited, as they were imported
            hello = ("failed", (f"the checks do not load: {describe(exc)}", str(root / "checks")))
        try:
            conn.send(hello)
        except OSError:
            return
        first = True
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
                    raise ConfigError(*hello[1])
                if first:
                    key = (task[0].path, assignment.student_files, kernel_spec(assignment, task[1]))
                    prefetch.prepare(*key)
                    if guess is not None and guess != key:  # the batch had graded it already: not needed
                        prefetch.discard(*guess)
                elif following is not None:
                    prefetch.prepare(following[0].path, assignment.student_files, kernel_spec(assignment, following[1]))
                reply: tuple[str, Any] = ("result", grade_safely(assignment, *task, prefetch))
            except Exception as exc:  # the assignment would not load here: an `error` row, the worker goes on
                reply = ("error", describe(exc))
            try:
                conn.send(reply)
            except OSError:
                return
            if first and following is not None and assignment is not None:
                # only now: while every worker grades its first submission, their kernels and checks have the
                # cores to themselves, and the batch's first result comes sooner
                prefetch.prepare(following[0].path, assignment.student_files, kernel_spec(assignment, following[1]))
            first = False


def end_with_the_grader() -> None:
    """Should the process that started this worker die (killed: the machine's OOM killer, a job scheduler), the
    worker ends at once (as `Worker.stop` ends it: its sandboxes go with it), rather than grade on, starting a zygote
    of its own once the batch's is gone. (Its fork server is no sign: each worker holds the pipe that keeps the fork
    server alive.)"""
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="torchgrade-grader-watch", daemon=True).start()


def prepare_likely(prefetch: Any, root: Path, likely: Task | None) -> tuple | None:
    """Start preparing the sandbox and kernel of the task a worker will likely get first (from the assignment's
    configuration alone: its checks load meanwhile); the prefetch key, or None."""
    if likely is None:
        return None
    from ..build.assignment import load_assignment

    try:
        bundle = load_assignment(root, lazy=True)
        key = (likely[0].path, bundle.student_files, kernel_spec(bundle, likely[1]))
    except Exception:  # said where the assignment loads in full
        return None
    prefetch.prepare(*key)
    return key


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
