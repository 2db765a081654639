"""Fair CPU: a notebook that forks 64 busy processes, each in a Unix session of its own, graded at `--jobs 2`
beside correct notebooks. Without a CPU controller each session is a scheduling group of its own (autogroup),
so the hog takes 64 shares of the cores to its neighbour's one; with a `cpu` cgroup per sandbox, it takes one.
"""

from __future__ import annotations

import shutil
import time

import pytest

import hostile
from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.kernel.isolation import bwrap_unavailable
from autograder.kernel.limits import Cgroups, cgroups_unavailable, cpu_cgroup_unavailable
from conftest import notebook_with

pytestmark = pytest.mark.skipif(cgroups_unavailable() is not None or cpu_cgroup_unavailable() is not None,
                                reason=f"no per-sandbox cgroups here: {cgroups_unavailable() or cpu_cgroup_unavailable()}")

HOG = """import os, time
for _ in range(64):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
time.sleep(40)
"""
VICTIMS = ("b_victim", "c_victim", "d_victim")


def graded(bundle, subs, out):
    report = grade_into(load_assignment(bundle), sorted(subs.glob("*.ipynb")), out, GradeSettings(jobs=2))
    return {r.submission: r for r in report.graded}


def test_each_sandbox_gets_a_cpu_cgroup_of_the_default_weight():
    groups = Cgroups(1 << 30, 64)
    try:
        assert groups.cpu is not None and (groups.cpu / "cpu.shares").read_text().strip() == "1024"
        assert str(groups.cpu / "cgroup.procs") in groups.procs_files  # the kernel joins it before it exists
    finally:
        groups.close()
    assert not groups.cpu.exists()


def test_cgroups_left_by_a_killed_grader_neither_clash_nor_stay():
    """A grader killed with its sandboxes open leaves their cgroups behind, named for its pid: a later process given
    the same pid still makes its own (a name with a counter clashed, and no kernel started: a grader fault billed to
    the submission), and the leftovers of processes that are gone are removed, once over a minute old (a younger one
    may belong to a grader in another PID namespace, whose kernel has yet to join it)."""
    import os
    import subprocess

    from autograder.kernel.limits import cgroup_roots, remove_stale_cgroups

    gone = subprocess.run(["true"]).args and subprocess.Popen(["true"])
    gone.wait()
    leftovers = [root / name for root in cgroup_roots().values()
                 for name in (f"torchgrade-{os.getpid()}-0", f"torchgrade-{os.getpid()}-1", f"torchgrade-{gone.pid}-1")]
    fresh = [root / f"torchgrade-{gone.pid}-fresh" for root in cgroup_roots().values()]
    for group in leftovers + fresh:
        group.mkdir(exist_ok=True)
    for group in leftovers:  # made by a grader killed an hour ago
        os.utime(group, (time.time() - 3600, time.time() - 3600))
    try:
        groups = Cgroups(1 << 30, 64)
        groups.close()
        remove_stale_cgroups()
        assert [g.exists() for g in leftovers] == [True, True, False] * len(cgroup_roots())
        assert all(g.exists() for g in fresh)  # too young to be a leftover: another PID namespace's, about to be joined
    finally:
        for group in leftovers + fresh:
            if group.exists():
                group.rmdir()


@pytest.mark.slow
@pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox here: {bwrap_unavailable()}")
def test_a_cpu_hog_with_a_session_per_process_does_not_starve_its_neighbours(convolution_build, tmp_path):
    bundle = convolution_build.autograder_dir
    alone, beside = tmp_path / "alone", tmp_path / "beside"
    alone.mkdir()
    beside.mkdir()
    shutil.copy(bundle / "solution.ipynb", alone / "b_victim.ipynb")
    baseline = graded(bundle, alone, tmp_path / "out-alone")["b_victim"]
    assert baseline.total == 21, baseline.message

    for name in VICTIMS:
        shutil.copy(bundle / "solution.ipynb", beside / f"{name}.ipynb")
    hostile.write(notebook_with(bundle / "blank.ipynb", HOG), beside / "a_hog.ipynb")
    start = time.monotonic()
    results = graded(bundle, beside, tmp_path / "out-beside")
    assert time.monotonic() - start > 40  # the hog ran the whole time the victims were graded
    for name in VICTIMS:
        victim = results[name]
        assert (victim.status, victim.total, victim.flags) == ("ok", 21, []), (name, victim.message)
        assert victim.execution_time < 2.5 * baseline.execution_time, (name, victim.execution_time,
                                                                        baseline.execution_time)
