"""The worker side of the Dask executor (`dask_cluster.py`): what runs inside each Dask worker process.

`BundlePlugin` carries the autograder bundle (a tar.gz in memory) to every worker, those that join later
included. On each worker it is unpacked once per host into a private cache keyed by its SHA-256
(`unpack_bundle`), and a thread of the worker's own (`WorkerBundle`) checks that the worker can isolate
submissions, starts the worker's zygote (unless it was given one to share) and loads the assignment, while
the worker waits for work. Each task (`grade_task`) then grades one notebook, whose bytes it carries, in the
same sandbox and on the same warm kernels as the local pool. This module imports nothing heavy, so that the
zygote starts as soon as the worker does; torch and the grader load in that thread, alongside the zygote's
own imports (a LocalCluster's workers have them loaded already, from the server they were forked from).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..config import CONFIG_NAME, AssignmentConfig, GradeSettings
from ..errors import ConfigError, TorchgradeError
from ..kernel.isolation import get_isolation
from ..kernel.spec import KernelSpec, base_env
from ..kernel.zygote import Zygote
from ..kernel.machine import kernel_threads, resolved_device
from .submissions import Submission

PLUGIN_PREFIX = "torchgrade-bundle-"
READY_WAIT = 600.0  # seconds a worker may take to load the assignment


class ClusterError(TorchgradeError):
    """The Dask cluster went away, cancelled the batch's work, or a worker could not set the bundle up."""


def cache_root() -> Path:
    """This user's private folder on this host (a worker refuses one that anyone else could write to)."""
    root = Path(tempfile.gettempdir()) / f"torchgrade-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError("not a private folder of this user; remove it, or set TMPDIR", root)
    return root


def unpack_bundle(data: bytes, digest: str) -> Path:
    """The bundle's folder on this host, unpacked once, whichever of its workers comes first."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise ConfigError("the autograder bundle arrived damaged")
    bundles = cache_root() / "bundles"
    bundles.mkdir(exist_ok=True)
    target = bundles / digest
    if not target.is_dir():
        unpacking = Path(tempfile.mkdtemp(dir=bundles, prefix=f".{digest[:16]}-"))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(unpacking, filter="data")
        try:
            os.rename(unpacking, target)
        except OSError:  # another worker of this host was first
            shutil.rmtree(unpacking, ignore_errors=True)
    return target


def scratch_folder() -> Path:
    """This worker process's folder for the notebooks it grades; those of worker processes that are gone (killed
    mid-task: no `finally` ran) are removed."""
    scratch = cache_root() / "scratch"
    scratch.mkdir(exist_ok=True)
    for folder in scratch.iterdir():
        if folder.name.isdigit() and int(folder.name) != os.getpid() and not alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = scratch / str(os.getpid())
    mine.mkdir(exist_ok=True)
    return mine


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_BUNDLES: dict[str, "WorkerBundle"] = {}  # by plugin name: one per batch


class BundlePlugin(WorkerPlugin):
    """Carries the autograder bundle to every worker of the cluster, and sets it up there."""

    def __init__(self, data: bytes, digest: str, settings: GradeSettings):
        self.data, self.digest, self.settings = data, digest, settings
        self.name = f"{PLUGIN_PREFIX}{digest[:16]}-{uuid.uuid4().hex[:8]}"  # one per batch, sharing the cache

    def setup(self, worker: Any) -> None:  # on the worker's event loop: quick, the work runs in a thread
        old = _BUNDLES.pop(self.name, None)
        if old is not None:
            old.stop()
        _BUNDLES[self.name] = WorkerBundle(self.data, self.digest, self.settings, worker.state.nthreads)

    def teardown(self, worker: Any) -> None:
        bundle = _BUNDLES.pop(self.name, None)
        if bundle is not None:
            bundle.stop()


class WorkerBundle:
    """One autograder bundle on one worker: unpacked, loaded once, with the worker's warm zygote.

    A thread of its own does the work and then stays until the bundle is removed, because a zygote ends
    with the thread that started it."""

    def __init__(self, data: bytes, digest: str, settings: GradeSettings, nthreads: int):
        self.settings = settings
        self.assignment: Any = None  # the Assignment, once loaded
        self.grade: Any = None  # executors.grade_safely, once loaded
        self.scratch = Path()  # where its tasks write their notebooks
        self.error = ""
        self.ready, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.keep, args=(data, digest, nthreads), daemon=True,
                                       name=f"torchgrade-bundle-{digest[:8]}")
        self.thread.start()

    def keep(self, data: bytes, digest: str, nthreads: int) -> None:
        zygote = None
        try:
            root = unpack_bundle(data, digest)
            self.scratch = scratch_folder()
            settings = self.settings
            if settings.threads is None:
                settings = replace(settings, threads=max(1, len(os.sched_getaffinity(0)) // max(1, nthreads)))
            get_isolation(settings.isolation).check()
            if settings.zygote is None:  # a LocalCluster's workers share the grader's
                zygote = Zygote(base_env(zygote_spec(AssignmentConfig.load(root / CONFIG_NAME), settings)))
                zygote.launch()  # it imports while this thread does
                settings = replace(settings, zygote=zygote.address)
            import torch

            from ..build.assignment import load_assignment
            from .worker import grade_safely  # the grader (nbclient and all), loaded before the first task

            torch.set_num_threads(1)  # a worker's checks are small; the cores are the kernels'
            self.assignment = load_assignment(root)
            self.settings, self.grade = settings, grade_safely
        except Exception as exc:
            from .worker import describe

            self.assignment, self.error = None, describe(exc)
        finally:
            self.ready.set()
        self.done.wait()
        if zygote is not None:
            zygote.close()

    def wait(self) -> tuple[Any, GradeSettings]:
        if not self.ready.wait(READY_WAIT):
            raise ClusterError(f"the worker did not load the assignment within {READY_WAIT:.0f} s")
        if self.assignment is None:
            raise ConfigError(f"this worker cannot grade: {self.error}")
        return self.assignment, self.settings

    def stop(self) -> None:
        self.done.set()  # its thread stops the zygote as soon as it is done (never blocking the worker's loop)
        if self.scratch != Path():
            shutil.rmtree(self.scratch, ignore_errors=True)


def zygote_spec(config: AssignmentConfig, settings: GradeSettings) -> KernelSpec:
    """What shapes the zygote's environment (threads, seed, device), as `pipeline.kernel_spec` has it; the CPU
    needs no torch to say so, so the zygote can start before torch is imported here."""
    device = "cpu" if settings.device == "cpu" else resolved_device(settings)
    return KernelSpec(limits=config.limits, threads=kernel_threads(settings), device=device, seed=config.seed,
                      isolation=settings.isolation)


def worker_bundle(name: str, wait: float = 60.0) -> WorkerBundle:
    deadline = time.monotonic() + wait
    while name not in _BUNDLES:  # a worker that has just joined may get a task before its plugins run
        if time.monotonic() > deadline:
            raise ClusterError("the autograder bundle never reached this worker")
        time.sleep(0.1)
    return _BUNDLES[name]


async def bundle_problem(name: str, dask_worker: Any = None) -> str:
    """Why this worker cannot grade ('' when it can), once it has set the bundle up."""
    bundle = _BUNDLES.get(name)
    if bundle is None:
        return "the autograder bundle did not reach it"
    if not await asyncio.to_thread(bundle.ready.wait, READY_WAIT):
        return f"it did not load the assignment within {READY_WAIT:.0f} s"
    return bundle.error


def grade_task(bundle: str, topic: str, key: str, name: str, filename: str, notebook: bytes, source: str) -> Any:
    """One submission, graded on a worker: the notebook's bytes are written to a scratch folder for the time.
    Announces on `topic` that it started, where (see `DaskCluster.on_started`); returns its SubmissionResult."""
    worker = get_worker()
    here = worker_bundle(bundle)
    assignment, settings = here.wait()
    worker.log_event(topic, {"key": key, "worker": worker.address, "pid": os.getpid()})
    scratch = Path(tempfile.mkdtemp(prefix="submission-", dir=here.scratch))
    try:
        path = scratch / filename
        path.write_bytes(notebook)
        result = here.grade(assignment, Submission(name, path), settings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return replace(result, path=source)
