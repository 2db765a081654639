"""The Dask executor: each submission is one task on the workers of a Dask distributed cluster.

`--executor dask --scheduler tcp://HOST:8786` grades on a running cluster's workers; without
`--scheduler`, on a LocalCluster of `--jobs` worker processes with one thread each, on this machine,
started warm as the local pool's workers are (forked from a server that imported the grader once, sharing
one zygote).
Only this process records results and writes `--out`: results stream back as they complete.

Shipping, with no shared file system needed: the autograder bundle travels once, as a tar.gz in memory
inside a worker plugin, which the scheduler hands to every worker, those that join later included; each
worker unpacks it into a cache keyed by its SHA-256 (once per host), loads the assignment and starts its
own zygote once (a LocalCluster's workers share this process's), and every task on that worker reuses them (`dask_worker.py`). Each task carries one
notebook's bytes. The plugin is removed at the end of the batch, which stops the workers' zygotes.

Failures: the cluster must not retry tasks on its own (`distributed.scheduler.allowed-failures: 0`, set
here for a LocalCluster; start a scheduler with it, or a warning says how many tries it allows), so a
worker's death makes each task it held fail with `KilledWorker`, and this process decides. Every task
announces on an event topic of the batch that it started, on which worker and process: a task that had
started on the dead worker is charged to its submission, which is graded again once (`RETRIES`), then
gets an `error` row; a task that was only waiting for that worker is sent again, free. Workers take one
task at a time (`worker-saturation: 1.0`), so none waits behind another. GPU submissions
(`--device cuda`) ask for a worker resource `GPU` (start workers with `--resources GPU=1`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tarfile
import tempfile
import uuid
import warnings
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import dask
from distributed import Client, KilledWorker, LocalCluster, as_completed
from distributed.utils import get_mp_context

from ..build.assignment import Assignment
from ..config import DEVICES, GradeSettings
from ..errors import ConfigError, InvalidSubmission
from ..kernel.isolation import get_isolation
from ..kernel.zygote import start_zygote
from ..kernel.spec import kernel_spec
from ..outcomes import SubmissionResult
from ..kernel.machine import kernel_threads
from .submissions import Submission
from . import dask_worker
from .dask_worker import BundlePlugin, ClusterError, bundle_problem, grade_task
from .worker import RETRIES, Finish, describe, grader_failed, worker_died
from .warm import warm_context

SCHEDULER_CONFIG = {"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}
CONNECT_TIMEOUT = "30s"
WORKER_WAIT = 600.0  # seconds to wait for a first worker to join an empty cluster
FREE_RESUBMITS = 10  # times a submission may lose its worker before it started, before it gets an `error` row


class DaskCluster:
    name = "dask"

    def __init__(self, settings: GradeSettings):
        self.settings = settings
        self.submission_of: dict[str, Submission] = {}  # task key → submission, while it is in flight
        self.started: dict[str, list[tuple[str, int]]] = defaultdict(list)  # task key → (worker, pid) it started on
        self.deaths: dict[Submission, list[str]] = defaultdict(list)  # the workers that died while grading it
        self.unstarted: dict[Submission, int] = defaultdict(int)  # its tasks lost before they started

    def check(self, assignment: Assignment) -> None:
        if self.settings.device not in DEVICES:  # resolved on each worker: this machine may have no GPU
            raise ConfigError(f"unknown device {self.settings.device!r}; choose one of {', '.join(DEVICES)}")
        get_isolation(self.settings.isolation)  # a known name; each worker checks that it can isolate
        assignment.load()  # checks that do not load fail here, not on every worker

    def close(self) -> None:
        """Nothing outlives `run` (its cluster and client end with it)."""

    def running(self) -> dict[str, int]:
        return {self.submission_of[key].name: starts[-1][1] for key, starts in list(self.started.items())
                if starts and key in self.submission_of}

    def run(self, assignment: Assignment, submissions: list[Submission], finish: Finish) -> None:
        if not submissions:
            return
        data = pack_bundle(assignment)
        digest = hashlib.sha256(data).hexdigest()
        if self.settings.scheduler:
            clustered = self.cluster_client(BundlePlugin(data, digest, self.worker_settings()))
        else:
            clustered = self.local_cluster(assignment, data, digest)
        with clustered as (client, bundle):
            self.preflight(client, bundle)
            self.grade(client, assignment, bundle, submissions, finish)

    @contextmanager
    def local_cluster(self, assignment: Assignment, data: bytes, digest: str) -> Iterator[tuple[Client, str]]:
        """A client of a LocalCluster of `--jobs` worker processes, started as the local pool starts its workers:
        forked from a server that imported the grader once, sharing one zygote that this process starts meanwhile
        (rather than each importing torch and the grader, and starting a zygote, of its own)."""
        zygote = start_zygote(kernel_spec(assignment, self.settings))
        try:
            plugin = BundlePlugin(data, digest, replace(self.worker_settings(), zygote=zygote.address))
            resources = {"GPU": 1} if self.settings.device == "cuda" else None
            with dask.config.set({**SCHEDULER_CONFIG, "distributed.worker.multiprocessing-method": "forkserver"}):
                get_mp_context()  # Dask sets its list of modules for the server to import, once: after this, ours
                warm_context("distributed", dask_worker.__name__)  # replaces it, and Dask's workers keep ours
                cluster = LocalCluster(n_workers=max(1, self.settings.jobs), threads_per_worker=1, processes=True,
                                       memory_limit=0, dashboard_address=":0", resources=resources,
                                       silence_logs=logging.ERROR, plugins=(plugin,))  # kernels: their own limits
                with cluster, Client(cluster) as client:
                    yield client, plugin.name
        finally:
            zygote.close()

    @contextmanager
    def cluster_client(self, plugin: BundlePlugin) -> Iterator[tuple[Client, str]]:
        """A client of the scheduler at `--scheduler`, with the bundle on every worker (removed at the end, which
        stops the workers' zygotes)."""
        try:
            client = Client(self.settings.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {self.settings.scheduler}: {exc}") from exc
        with client:
            client.register_plugin(plugin, name=plugin.name)
            try:
                yield client, plugin.name
            finally:
                try:
                    client.unregister_worker_plugin(plugin.name)
                except Exception:  # the cluster is gone already
                    pass

    def worker_settings(self) -> GradeSettings:
        """As the workers grade: their own zygote; kernel threads their share of this host's cores (a
        LocalCluster) or, on a cluster, as --threads says or else each worker's cores over its threads."""
        threads = self.settings.threads or (None if self.settings.scheduler else kernel_threads(self.settings))
        return replace(self.settings, threads=threads, zygote=None, gpu=None)

    def preflight(self, client: Client, bundle: str) -> None:
        """Fail closed before any submission is sent: every worker can isolate and has loaded the assignment."""
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise ConfigError(f"no Dask worker joined the scheduler at {self.settings.scheduler} within "
                              f"{WORKER_WAIT:.0f} s") from None
        problems = {worker: why for worker, why in client.run(bundle_problem, bundle).items() if why}
        if problems:
            raise ConfigError("Dask workers that cannot grade: "
                              + "; ".join(f"{worker}: {why}" for worker, why in sorted(problems.items())))
        if self.settings.device == "cuda":
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            if not any(w.get("resources", {}).get("GPU") for w in workers):
                raise ConfigError("--device cuda needs Dask workers with a GPU resource (start them with "
                                  "`--resources GPU=1`); none of this cluster's workers has one")
        allowed = client.run_on_scheduler(allowed_failures)
        if allowed:
            warnings.warn(f"the Dask scheduler retries a task whose worker died {allowed} times before torchgrade "
                          "sees it; start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 so that a "
                          f"submission is graded again only {RETRIES} time(s)", stacklevel=2)

    def grade(self, client: Client, assignment: Assignment, bundle: str, submissions: list[Submission],
              finish: Finish) -> None:
        topic = f"torchgrade-started-{uuid.uuid4().hex}"
        client.subscribe_topic(topic, self.on_started)
        resources = {"GPU": 1} if self.settings.device == "cuda" else None
        queue = list(reversed(submissions))
        futures = as_completed()

        def submit(each: Submission) -> None:
            try:
                notebook = each.path.read_bytes()
            except OSError as exc:  # as the local pool says of a notebook it cannot read
                finish(SubmissionResult.ungraded_row(each.name, "invalid", InvalidSubmission.from_exception(
                    each.path, exc).message, assignment.config.questions, str(each.path), phase="read"))
                return
            key = f"torchgrade-{each.name}-{uuid.uuid4().hex[:12]}"  # a new key per try
            self.submission_of[key] = each
            futures.add(client.submit(grade_task, bundle, topic, key, each.name, each.path.name, notebook,
                                      str(each.path), key=key, pure=False, retries=0, resources=resources))

        def top_up() -> None:  # enough in flight to keep every worker busy; notebooks read as they are sent
            room = 2 * slots(client) + 4 - futures.count()
            while queue and room > 0:
                submit(queue.pop())
                room -= 1

        try:
            top_up()
            for future in futures:
                each = self.submission_of.pop(future.key)
                result = self.outcome(future, each, self.started.pop(future.key, []), assignment)
                future.release()
                if result is None:
                    submit(each)
                else:
                    finish(result)
                top_up()
        finally:
            for future in list(futures.futures):
                future.cancel()
            client.unsubscribe_topic(topic)
            self.submission_of.clear()
            self.started.clear()
            self.deaths.clear()
            self.unstarted.clear()

    def outcome(self, future: Any, each: Submission, starts: list[tuple[str, int]],
                assignment: Assignment) -> SubmissionResult | None:
        """What a finished task means for its submission: its result, an `error` row, or None: send it again (its
        worker died under it no more than `RETRIES` times, or before it started)."""
        if future.status == "finished":
            return future.result()
        if future.status != "error":
            raise ClusterError(f"the Dask cluster dropped the task of {each.name} ({future.status}); grades already "
                               "recorded are kept: rerun to resume")
        exc = future.exception()
        if not isinstance(exc, KilledWorker):
            return grader_failed(assignment, each, f"on a Dask worker: {describe(exc)}")
        self.deaths[each] += [f"worker {worker} (pid {pid})" for worker, pid in starts]  # charged: it was running
        self.unstarted[each] += not starts  # free: it was only waiting for that worker
        if len(self.deaths[each]) > RETRIES:
            return worker_died(assignment, each, self.deaths[each])
        if self.unstarted[each] > FREE_RESUBMITS:
            return grader_failed(assignment, each, "the Dask workers it was sent to kept dying before it started")
        return None

    def on_started(self, event: tuple[float, dict[str, Any]]) -> None:
        """A task's announcement that it started (in the client's thread)."""
        _, message = event
        if message.get("key") in self.submission_of:
            self.started[message["key"]].append((message["worker"], int(message["pid"])))


def slots(client: Client) -> int:
    return sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values())


def allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


def pack_bundle(assignment: Assignment) -> bytes:
    """The autograder bundle as a tar.gz in memory, byte for byte the same for the same files (so its digest
    names its content). A source folder is built into a bundle first, as `grade` does."""
    if assignment.kind != "bundle":
        if assignment.kind != "source":
            raise ConfigError("grade with the autograder bundle or the source folder", assignment.root)
        from ..build.bundles import build_bundles

        with tempfile.TemporaryDirectory(prefix="torchgrade-bundle-") as tmp:
            _, autograder = build_bundles(assignment.root, Path(tmp))
            return pack_folder(Path(autograder))
    return pack_folder(assignment.root)


def pack_folder(root: Path) -> bytes:
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if "__pycache__" in relative.parts or path.suffix == ".pyc":
                continue
            tar.add(path, arcname=str(relative), recursive=False, filter=clean)
    return buffer.getvalue()
