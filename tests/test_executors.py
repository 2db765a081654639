"""Executors: the local pool and Dask grade alike; a dead worker costs only its own submission; the gradebook's
cost is linear in the batch (the records are read once at the start and once at the end)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import psutil
import pytest

from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import AssignmentConfig, GradeSettings
from autograder.cli.demo import example_submissions
from autograder.errors import ConfigError
from autograder.extensions import REGISTRIES
from autograder.grading.executors import get_executor
from autograder.report.gradebook import GRADEBOOK, Gradebook, write_gradebook, write_gradebook_rows
from autograder.report.records import Records
from autograder.outcomes import QuestionScore, SubmissionResult
from conftest import ASSIGNMENTS, expected_points, notebook_with

CONFIG = AssignmentConfig.load(ASSIGNMENTS / "convolution" / "assignment.toml")


def synthetic(name: str, i: int = 0, status: str = "ok") -> SubmissionResult:
    questions = [QuestionScore(q.id, float((i + k) % (q.points + 1)), q.points) for k, q in enumerate(CONFIG.questions)]
    return SubmissionResult(name, status, questions, flags=[{"kind": "native-code", "origin": "source",
                                                               "detail": "x"}] if i % 7 == 0 else [])


class Instant:
    """An executor that 'grades' at once, for testing the batch without kernels."""

    def __init__(self, settings):
        self.seen: list[str] = []

    def check(self, assignment):
        pass

    def close(self):
        pass

    def running(self):
        return {}

    def run(self, assignment, submissions, finish):
        for i, each in enumerate(submissions):
            self.seen.append(each.name)
            finish(synthetic(each.name, i))


def test_an_unknown_executor_is_a_named_error():
    with pytest.raises(ConfigError, match="unknown executor 'slurm'; known: local, dask"):
        get_executor(GradeSettings(executor="slurm"))


def test_grading_locally_never_imports_dask():
    code = ("import sys; import autograder.cli.parser, autograder.cli.commands, autograder.grading.batch; "
            "from autograder.config import GradeSettings; from autograder.grading.executors import get_executor; "
            "get_executor(GradeSettings()); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')], 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_batch_reads_its_records_twice_whatever_its_size(tmp_path, monkeypatch):
    made: list[Instant] = []
    monkeypatch.setitem(REGISTRIES["executor"], "instant", lambda s: made.append(Instant(s)) or made[-1])
    reads = []
    original = Records.results
    monkeypatch.setattr(Records, "results", lambda self: reads.append(1) or original(self))
    notebooks = []
    for i in range(60):
        notebooks.append(tmp_path / "in" / f"s{i:03}.ipynb")
        notebooks[-1].parent.mkdir(exist_ok=True)
        notebooks[-1].write_text(f"{{}} {i}")
    out, settings = tmp_path / "out", GradeSettings(executor="instant")
    assignment = SimpleNamespace(config=CONFIG, fingerprint=lambda: "")
    seen = []
    report = grade_into(assignment, notebooks, out, settings, on_result=lambda r: seen.append(r.submission))
    assert len(reads) == 2 and seen == [p.stem for p in notebooks]  # at the start and at the end, not per result
    expected = write_gradebook(tmp_path / "check", CONFIG, [synthetic(p.stem, i) for i, p in enumerate(notebooks)])
    assert (out / GRADEBOOK).read_text() == (tmp_path / "check" / GRADEBOOK).read_text()
    pd.testing.assert_frame_equal(report.gradebook, expected)

    notebooks[5].write_text("changed")  # a rerun grades only what changed
    again = grade_into(assignment, reversed(notebooks), out, settings)
    assert made[-1].seen == ["s005"] and len(again.skipped) == 59
    assert list(pd.read_csv(out / GRADEBOOK)["submission"]) == sorted(p.stem for p in notebooks)


def test_the_gradebook_a_batch_starts_with_is_written_as_pandas_writes_it(tmp_path):
    """Written with the csv module (no pandas before the first result), byte for byte what pandas writes: names
    with commas, quotes and line breaks, fractional, huge and tiny points, a pending question, flags, lateness."""
    results = [synthetic(name, i, status) for i, (name, status) in enumerate(
        [("plain", "ok"), ('comma, "quoted"', "ok"), ("line\nbreak", "timeout"), ("ünïcode", "error")])]
    results[0].questions[0] = QuestionScore(CONFIG.questions[0].id, 1 / 3, CONFIG.questions[0].points)
    results[1].questions[0] = QuestionScore(CONFIG.questions[0].id, 1e-7, CONFIG.questions[0].points)
    results[2].questions[0] = QuestionScore(CONFIG.questions[0].id, 1e17, CONFIG.questions[0].points)
    results[3].questions[0] = QuestionScore(CONFIG.questions[0].id, 0.0, CONFIG.questions[0].points, manual=True)
    results[3].lateness = {"periods": 2, "hours_late": 25.5, "penalty": -1.5}
    frame = write_gradebook(tmp_path / "final", CONFIG, results)
    write_gradebook_rows(tmp_path / "csv", CONFIG, reversed(results))
    assert (tmp_path / "csv" / GRADEBOOK).read_bytes() == frame.to_csv(index=False).encode("utf-8")
    assert (tmp_path / "final" / GRADEBOOK).read_bytes() == frame.to_csv(index=False).encode("utf-8")


def test_an_interrupted_batch_writes_its_gradebook_and_a_killed_one_keeps_its_rows(tmp_path, monkeypatch):
    class Interrupted(Instant):
        def run(self, assignment, submissions, finish):
            finish(synthetic(submissions[0].name))
            raise KeyboardInterrupt

    monkeypatch.setitem(REGISTRIES["executor"], "interrupted", Interrupted)
    notebooks = [tmp_path / f"{name}.ipynb" for name in ("b", "a", "c")]
    for p in notebooks:
        p.write_text(p.stem)
    with pytest.raises(KeyboardInterrupt):
        grade_into(SimpleNamespace(config=CONFIG, fingerprint=lambda: ""), notebooks, tmp_path / "out", GradeSettings(executor="interrupted"))
    assert list(pd.read_csv(tmp_path / "out" / GRADEBOOK)["submission"]) == ["b"]

    book = Gradebook(tmp_path / "live", CONFIG, [synthetic("m", 1)])  # a kill: rows appended, never closed
    for i, name in enumerate(["z", "a"]):
        book.add(synthetic(name, i))
    assert list(pd.read_csv(tmp_path / "live" / GRADEBOOK)["submission"]) == ["m", "z", "a"]
    book.close([synthetic("m", 1), synthetic("z", 0), synthetic("a", 1)])
    assert list(pd.read_csv(tmp_path / "live" / GRADEBOOK)["submission"]) == ["a", "m", "z"]


def test_the_bundle_ships_byte_for_byte_and_unpacks_once_per_host(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from autograder.grading.dask_cluster import pack_folder
    from autograder.grading.dask_worker import cache_root, unpack_bundle

    bundle = tmp_path / "bundle"
    (bundle / "checks" / "__pycache__").mkdir(parents=True)
    (bundle / "checks" / "public.py").write_text("checks = 1\n")
    (bundle / "checks" / "__pycache__" / "public.cpython-311.pyc").write_bytes(b"\0")
    (bundle / "assignment.toml").write_text("name = 'x'\n")
    data = pack_folder(bundle)
    os.utime(bundle / "assignment.toml", (1, 1))
    assert pack_folder(bundle) == data  # the same files, the same bytes: the digest names the content

    import hashlib

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "host"))
    (tmp_path / "host").mkdir()
    digest = hashlib.sha256(data).hexdigest()
    root = unpack_bundle(data, digest)
    assert root == cache_root() / "bundles" / digest
    assert (root / "checks" / "public.py").read_text() == "checks = 1\n"
    assert not (root / "checks" / "__pycache__").exists()
    assert unpack_bundle(data, digest) == root
    with pytest.raises(ConfigError, match="damaged"):
        unpack_bundle(data[:-1], digest)
    cache_root().chmod(0o777)
    with pytest.raises(ConfigError, match="not a private folder"):
        cache_root()


def test_dask_charges_a_dead_worker_only_to_the_task_that_had_started_on_it():
    pytest.importorskip("distributed")
    from distributed import KilledWorker

    from autograder.grading.dask_cluster import FREE_RESUBMITS, DaskCluster
    from autograder.grading.submissions import Submission

    cluster, assignment = DaskCluster(GradeSettings(executor="dask")), SimpleNamespace(config=CONFIG)
    killed = SimpleNamespace(status="error", exception=lambda: KilledWorker("key", None, 0))
    victim, bystander = Submission("victim", Path("victim.ipynb")), Submission("bystander", Path("b.ipynb"))
    assert cluster.outcome(killed, victim, [("tcp://a:1", 11)], assignment) is None  # died once: graded again
    for _ in range(FREE_RESUBMITS):  # only waiting on a dying worker: sent again, free
        assert cluster.outcome(killed, bystander, [], assignment) is None
    row = cluster.outcome(killed, victim, [("tcp://b:2", 12)], assignment)  # twice: an `error` row
    assert row.status == "error" and "2 times" in row.message and "tcp://a:1 (pid 11)" in row.message
    assert cluster.outcome(killed, bystander, [], assignment).status == "error"  # workers that keep dying
    done = SimpleNamespace(status="finished", result=lambda: synthetic("bystander"))
    assert cluster.outcome(done, bystander, [("tcp://c:3", 13)], assignment).status == "ok"
    failed = SimpleNamespace(status="error", exception=lambda: OSError("disk full"))
    assert "the grader failed: on a Dask worker: OSError: disk full" in cluster.outcome(
        failed, victim, [("tcp://c:3", 13)], assignment).message


# ---- with kernels ----

@pytest.mark.slow
def test_dask_grades_the_golden_examples_as_the_local_pool_does(builds, tmp_path):
    pytest.importorskip("distributed")
    builds.graded_examples("convolution")  # the local pool, --jobs 2
    report = builds.build("convolution")
    submissions = example_submissions(report.autograder_dir, ASSIGNMENTS / "convolution")
    owners: set[int] = set()  # of the zygotes running while results arrive
    dask = grade_into(load_assignment(report.autograder_dir), submissions, tmp_path,
                       GradeSettings(jobs=2, executor="dask"), on_result=lambda _: owners.update(zygote_owners()))
    assert owners == {os.getpid()}  # the LocalCluster's workers share the grader's zygote
    local = (builds.root / "grades" / "convolution" / GRADEBOOK).read_text()
    assert (tmp_path / GRADEBOOK).read_text() == local
    assert sorted(r.submission for r in dask.graded) == sorted(p.stem for p in submissions)
    assert {r.path for r in dask.graded} == {str(p) for p in submissions}  # the grader's paths, not the workers'


def zygote_owners() -> set[int]:
    """This process and those below it (workers), where they own a running zygote (a zygote's last argument names
    the process it belongs to)."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    owners = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if len(cmdline) > 2 and "autograder.kernel.zygote import main" in cmdline[2] and int(cmdline[-1]) in mine:
            owners.add(int(cmdline[-1]))
    return owners


def kill_when_running(executor, plan: dict[str, int], stop: threading.Event, killed: dict[str, list[int]],
                      after: float = 2.0) -> None:
    """Kill the worker process grading a submission of `plan`, `after` seconds into each of its first
    `plan[name]` tries (mid-task: its kernel is starting or running)."""
    seen: dict[tuple[str, int], float] = {}
    while not stop.is_set():
        for name, pid in executor.running().items():
            if len(killed[name]) < plan.get(name, 0) and pid not in killed[name] and pid != os.getpid():
                if time.monotonic() - seen.setdefault((name, pid), time.monotonic()) >= after:
                    os.kill(pid, signal.SIGKILL)
                    killed[name].append(pid)
        stop.wait(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_killed_worker_costs_only_its_own_submission(convolution_build, tmp_path, executor):
    if executor == "dask":
        pytest.importorskip("distributed")
    solution = convolution_build.autograder_dir / "solution.ipynb"
    slow = notebook_with(solution, "import time\ntime.sleep(10)")
    for name in ("victim", "survivor"):
        nbformat.write(slow, tmp_path / f"{name}.ipynb")
    others = [ASSIGNMENTS / "convolution" / "examples" / f"{n}.ipynb" for n in ("flipped_kernel", "no_sqrt", "partial")]
    submissions = [tmp_path / "victim.ipynb", tmp_path / "survivor.ipynb", *others]
    assignment = load_assignment(convolution_build.autograder_dir)
    pool = get_executor(GradeSettings(jobs=2, executor=executor))
    pool.check(assignment)
    results: dict[str, list[SubmissionResult]] = defaultdict(list)
    killed: dict[str, list[int]] = defaultdict(list)
    stop = threading.Event()
    killer = threading.Thread(target=kill_when_running, args=(pool, {"victim": 2, "survivor": 1}, stop, killed))
    killer.start()
    try:
        from autograder.grading.submissions import as_submission

        pool.run(assignment, [as_submission(p) for p in submissions], lambda r: results[r.submission].append(r))
        again: list[SubmissionResult] = []  # the same pool grades a second batch on workers of its own
        pool.run(assignment, [as_submission(others[0])], again.append)
        assert [r.status for r in again] == ["ok"], [r.message for r in again]
    finally:
        stop.set()
        killer.join()
        pool.close()
    assert {name: len(rs) for name, rs in results.items()} == {p.stem: 1 for p in submissions}  # one row each
    assert len(killed["victim"]) == 2 and len(killed["survivor"]) == 1
    victim = results["victim"][0]
    assert victim.status == "error" and "died while grading it, 2 times" in victim.message, victim.message
    survivor = results["survivor"][0]  # killed once, graded again: full marks
    assert survivor.status == "ok" and survivor.total == survivor.max_total, survivor.message
    expected = expected_points("convolution")
    for path in others:  # nothing charged to the submissions in flight on the other worker
        result = results[path.stem][0]
        assert result.status == "ok", result.message
        assert {q.id: q.points for q in result.questions} == {
            k: v for k, v in expected[path.stem].items() if k != "diagnoses"}


@pytest.mark.slow
def test_with_more_than_one_job_the_process_that_hands_out_work_never_imports_torch(convolution_build, tmp_path):
    """Before the first result, the machine's cores import torch twice (the zygote, the workers' server), not three
    times: the process that hands out work and keeps results loads the assignment's configuration only, and each
    worker loads its checks. The grades are those of the golden examples."""
    names = ["solution", "partial", "no_sqrt"]
    subs = [convolution_build.autograder_dir / "solution.ipynb", *(ASSIGNMENTS / "convolution" / "examples" /
                                                                   f"{n}.ipynb" for n in names[1:])]
    code = (f"import sys, json; from pathlib import Path; from autograder.build.assignment import load_assignment; "
            f"from autograder.cli.run_batch import grade_into; from autograder.config import GradeSettings; "
            f"bundle = load_assignment(Path({str(convolution_build.autograder_dir)!r}), lazy=True); "
            f"batch = grade_into(bundle, [Path(p) for p in {[str(s) for s in subs]!r}], Path({str(tmp_path)!r}), "
            f"GradeSettings(jobs=2)); assert 'torch' not in sys.modules, 'torch was imported'; "
            f"print(json.dumps({{r.submission: {{q.id: q.points for q in r.questions}} for r in batch.graded}}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    points = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = expected_points("convolution")
    assert points == {n: {k: v for k, v in expected[n].items() if k != "diagnoses"} for n in names}


def test_a_grader_first_kernel_starts_alone_and_the_next_once_it_runs(monkeypatch):
    """`Prefetch.prepare(..., hold=True)`: a grader's first submission does not share the machine's busiest moment
    with the next one's kernel; that starts once `release` says the first kernel runs (grade_submission does)."""
    from autograder.kernel.prefetch import Prefetch

    started: list[str] = []
    monkeypatch.setattr(Prefetch, "_prepared", staticmethod(
        lambda notebook, files, spec: started.append(notebook) or SimpleNamespace(stop=lambda: None)))
    with Prefetch() as prefetch:
        prefetch.prepare("first", None, "spec")
        prefetch.prepare("second", None, "spec", hold=True)
        prefetch.session("first", None, "spec")
        time.sleep(0.1)
        assert started == ["first"]
        prefetch.release()
        assert prefetch.session("second", None, "spec") is not None and started == ["first", "second"]
        prefetch.prepare("third", None, "spec", hold=True)  # never released (its submission failed): never started
    assert started == ["first", "second"]


def test_a_worker_prepares_its_first_kernel_as_it_starts_and_its_second_once_its_first_result_is_sent(
        monkeypatch):
    """With several workers, each one's first submission has the cores to itself (no next kernel booting beside
    it): the batch's first result comes sooner. From then on the next kernel is prepared while one is graded."""
    import autograder.build.assignment as assignment_module
    import autograder.grading.worker as worker_module
    import autograder.kernel.prefetch as prefetch_module
    from autograder.grading import local_pool

    events: list[str] = []

    class FakePrefetch:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def prepare(self, path, files, spec, hold=False):
            events.append(f"prepare {path}")

        def discard(self, path, files, spec):
            events.append(f"discard {path}")

    class FakeConn:
        messages = [((SimpleNamespace(path="a"), None), (SimpleNamespace(path="b"), None)),
                    ((SimpleNamespace(path="b"), None), (SimpleNamespace(path="c"), None)),
                    ((SimpleNamespace(path="c"), None), None), None]

        def recv(self):
            return self.messages.pop(0)

        def send(self, message):
            events.append(f"send {message[1]}" if message[0] == "result" else message[0])

    monkeypatch.setattr(assignment_module, "load_assignment", lambda root, lazy=False: SimpleNamespace(student_files=None))
    monkeypatch.setattr(worker_module, "grade_safely", lambda a, sub, settings, prefetch: f"graded {sub.path}")
    monkeypatch.setattr(prefetch_module, "Prefetch", FakePrefetch)
    monkeypatch.setattr(local_pool, "kernel_spec", lambda assignment, settings: None)
    monkeypatch.setattr(local_pool.signal, "signal", lambda *a: None)
    local_pool.serve(FakeConn(), Path("."), GradeSettings(jobs=2))
    assert events == ["ready", "prepare a", "send graded a", "prepare b",
                      "prepare c", "send graded b", "send graded c"]

    # told the task it will likely get first, a worker prepares it as it starts, before its checks have loaded
    events.clear()
    FakeConn.messages = [((SimpleNamespace(path="a"), None), None), None]
    local_pool.serve(FakeConn(), Path("."), GradeSettings(jobs=2), (SimpleNamespace(path="a"), None))
    assert events == ["prepare a", "ready", "prepare a", "send graded a"]  # (prepared once: the same key)
    events.clear()  # a resumed batch had graded it: what was prepared for it is dropped
    FakeConn.messages = [((SimpleNamespace(path="b"), None), None), None]
    local_pool.serve(FakeConn(), Path("."), GradeSettings(jobs=2), (SimpleNamespace(path="a"), None))
    assert events == ["prepare a", "ready", "prepare b", "discard a", "send graded b"]


def test_the_workers_server_imports_without_the_collector_and_its_workers_collect():
    """The workers' fork server imports torch and the grader with the collector off (each full collection would walk
    every object imported so far), then freezes them and turns it back on: its workers collect, skipping torch."""
    code = ("import gc\nfrom autograder.grading.warm import warm_context\n"
            "if __name__ == '__main__':\n"
            "    with warm_context().Pool(1) as pool:\n"
            "        print(pool.apply(gc.isenabled), pool.apply(gc.get_freeze_count) > 100000)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


def test_each_worker_is_told_the_task_it_will_likely_get_first():
    """`grade_in_workers` hands each worker two tasks at a time, in order: worker i starts with submission 2i."""
    from autograder.grading.local_pool import LocalPool

    subs = [SimpleNamespace(name=str(i)) for i in range(5)]
    pool = LocalPool(GradeSettings(jobs=2, device="cpu"))
    assert [s.name for s, _ in pool.first_tasks(subs)] == ["0", "2"]
    assert [s.name for s, _ in pool.first_tasks(subs[:2])] == ["0"] and pool.first_tasks(None) == []


@pytest.mark.slow
def test_a_killed_grader_takes_its_workers_zygote_and_kernels_with_it(convolution_build, tmp_path):
    """`torchgrade grade --jobs 2` killed mid-batch (the machine's OOM killer, a job scheduler): nothing it started
    goes on using the cores (workers grading on, or starting zygotes of their own once the batch's is gone)."""
    solution = convolution_build.autograder_dir / "solution.ipynb"
    slow = notebook_with(solution, "import time\ntime.sleep(3)")
    subs = []
    for i in range(6):
        nbformat.write(slow, tmp_path / f"s{i}.ipynb")
        subs.append(tmp_path / f"s{i}.ipynb")
    out = tmp_path / "out"
    command = subprocess.Popen([sys.executable, "-m", "autograder.cli", "grade", str(convolution_build.autograder_dir),
                                *map(str, subs), "--out", str(out), "--jobs", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: set[psutil.Process] = set()
    deadline = time.monotonic() + 120
    while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
        started |= set(psutil.Process(command.pid).children(recursive=True))
        time.sleep(0.05)
    started |= set(psutil.Process(command.pid).children(recursive=True))
    command.kill()
    command.wait()
    time.sleep(3)
    alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [" ".join(p.cmdline())[:120] for p in alive]


def test_what_was_prepared_for_a_notebook_that_cannot_be_read_is_ended(tmp_path):
    """A sandbox and kernel prepared ahead for a file that turns out not to be a notebook end at once, rather than
    idle until the worker's last submission."""
    from autograder.grading.pipeline import grade_submission

    class Recording:
        def __init__(self):
            self.discarded = []

        def discard(self, path, files, spec):
            self.discarded.append(path)

    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    assignment = load_assignment(ASSIGNMENTS / "convolution", lazy=True)
    prefetch = Recording()
    result = grade_submission(bad, assignment, GradeSettings(), prefetch=prefetch)
    assert result.status == "invalid" and prefetch.discarded == [bad]


def test_a_discarded_preparation_is_ended_on_the_preparing_thread(monkeypatch):
    from autograder.kernel.prefetch import Prefetch

    stopped: list[str] = []
    monkeypatch.setattr(Prefetch, "_prepared", staticmethod(
        lambda notebook, files, spec: SimpleNamespace(stop=lambda: stopped.append(notebook))))
    with Prefetch() as prefetch:
        prefetch.prepare("unneeded", None, "spec")
        prefetch.prepare("needed", None, "spec")
        prefetch.discard("unneeded", None, "spec")
        prefetch.discard("never prepared", None, "spec")  # nothing to end
        assert prefetch.session("needed", None, "spec") is not None
        prefetch.pool.submit(lambda: None).result()  # what the thread had to do is done
        assert stopped == ["unneeded"]
    assert stopped == ["unneeded"]  # the one taken is its grader's to end


def test_zygotes_are_started_from_a_thread_that_lasts_even_in_a_forked_child():
    """A zygote ends with the thread that started it: zygotes start from one thread that lasts as long as the process
    (`launcher`), also in a child forked after it started (which has none of its parent's threads)."""
    import threading

    from autograder.kernel.zygote import launcher

    seen = []
    assert launcher().run_here(lambda: seen.append(threading.current_thread().name) or 42) == 42
    assert seen == ["torchgrade-zygote-launcher"] and launcher() is launcher()
    with pytest.raises(ZeroDivisionError):
        launcher().run_here(lambda: 1 / 0)  # handed back to the caller; the thread goes on
    assert launcher().is_alive()
    child = os.fork()
    if child == 0:
        try:
            os._exit(launcher().run_here(lambda: 7))
        finally:
            os._exit(1)
    deadline = time.monotonic() + 10
    while (waited := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if waited[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
    assert waited[0] == child and os.waitstatus_to_exitcode(waited[1]) == 7
