"""The red team: every attack of the threat model, graded in a batch next to honest submissions.

Each test asserts the attacker's grade, the victims' grades, and that the batch ended with a row
for every submission and nothing else. The first batch runs with one job, so victims are graded
both before and after each attacker; the second runs with two.

The first batch (the attacks on the sandbox) runs under both isolations: `bwrap` and `user` (an
unprivileged uid per kernel, where bubblewrap cannot run). What only bubblewrap stops is asserted as
such, never skipped: under `user` the network is the host's and the grader's process list and command
lines are readable, so those attacks must be flagged (`ONLY_BWRAP_STOPS`); a kill of every process in
sight kills the attacker's own kernel, and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

import hostile
from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.kernel.isolation import bwrap_unavailable
from autograder.report.gradebook import GRADEBOOK
from conftest import notebook_with
from test_isolation_user import opened_environment

pytestmark = [pytest.mark.slow]
needs_bwrap = pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox here: {bwrap_unavailable()}")
# What an attack achieves under `user` that bubblewrap's namespaces stop; each must then be flagged.
ONLY_BWRAP_STOPS = {
    "i_escape": "the network is the host's (no network namespace): the connection is flagged `network`",
    "d_forge": "the grader's processes and command lines are readable in /proc (no hidepid without a mount "
               "namespace): the reading is flagged `processes`, and the paths named there are closed (0700)",
}

MARKER = f"tg-redteam-outlive-{os.getpid()}"
VICTIMS = ("a_victim", "c_victim", "f_victim", "h_victim", "k_victim")


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def bundle(convolution_build, tmp_path_factory) -> Path:
    """The convolution bundle with limits that keep these attacks quick: 1.2 GB, 4 s per probe."""
    folder = tmp_path_factory.mktemp("redteam") / "bundle"
    shutil.copytree(convolution_build.autograder_dir, folder)
    config = folder / "assignment.toml"
    text = re.sub(r"memory_mb = \d+", "memory_mb = 1200", config.read_text())
    config.write_text(re.sub(r"probe_timeout = [\d.]+", "probe_timeout = 4", text))
    return folder


def hosts_marker() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if MARKER in " ".join(p.info["cmdline"] or [])]


@pytest.fixture(scope="module", params=[pytest.param("bwrap", marks=needs_bwrap), "user"])
def first_batch(bundle, tmp_path_factory, request):
    mode = request.param
    if mode == "user" and (reason := opened_environment()):
        pytest.skip(f"no user sandbox here: {reason}")
    root = tmp_path_factory.mktemp(f"first-{mode}")
    subs, out = root / "submissions", root / "out"
    subs.mkdir()
    solution, blank = bundle / "solution.ipynb", bundle / "blank.ipynb"
    where = hostile.prefix(BUNDLE=bundle, OUT=out, SUBMISSIONS=subs, BLANK=blank, MARKER=MARKER)
    notebooks = {
        "b_tamper": notebook_with(blank, where + hostile.TAMPER_WITH_OUTPUTS),
        "d_forge": notebook_with(blank, where + hostile.FORGE_FROM_REFERENCE),
        "e_outlive": notebook_with(solution, where + hostile.OUTLIVE),
        "g_kill": notebook_with(solution, hostile.KILL_THE_GRADER),
        "i_escape": notebook_with(blank, hostile.ESCAPE_THE_NETWORK),
        "j_memory": notebook_with(blank, "CHILD_MB, KERNEL_MB = 700, 700\n" + hostile.SPLIT_MEMORY),
    }
    for name in VICTIMS:
        shutil.copy(solution, subs / f"{name}.ipynb")
    for name, nb in notebooks.items():
        hostile.write(nb, subs / f"{name}.ipynb")
    before = {"bundle": tree_digest(bundle), "submissions": tree_digest(subs)}
    start = time.monotonic()
    report = grade_into(load_assignment(bundle), sorted(subs.glob("*.ipynb")), out,
                        GradeSettings(jobs=1, isolation=mode))
    seconds = time.monotonic() - start
    after = {"bundle": tree_digest(bundle), "submissions": tree_digest(subs)}
    return {r.submission: r for r in report.graded}, out, before, after, seconds, mode


def test_every_submission_has_its_row_and_nothing_else_does(first_batch):
    results, out, _, _, _, mode = first_batch
    assert {r.isolation.split()[0] for r in results.values()} == {mode}  # as each results JSON says
    frame = pd.read_csv(out / GRADEBOOK)
    expected = sorted([*VICTIMS, "b_tamper", "d_forge", "e_outlive", "g_kill", "i_escape", "j_memory"])
    assert sorted(frame["submission"]) == expected
    assert sorted(p.stem for p in (out / "results").glob("*.json")) == expected


def test_victims_keep_full_marks_before_and_after_every_attacker(first_batch):
    results, _, _, _, _, _ = first_batch
    for name in VICTIMS:
        assert results[name].status == "ok" and results[name].total == 21, (name, results[name].message)
        assert results[name].flags == [], (name, results[name].flags)


def test_no_file_of_the_grader_or_of_other_students_changed(first_batch):
    _, _, before, after, _, _ = first_batch
    assert after["bundle"] == before["bundle"]
    assert after["submissions"] == before["submissions"]


def test_tampering_with_outputs_earns_nothing(first_batch):
    results, out, _, _, _, _ = first_batch
    assert results["b_tamper"].total == 0
    assert not (out / "results" / "ghost.json").exists()


def test_forging_answers_from_the_reference_earns_nothing_and_is_flagged(first_batch):
    results, _, _, _, _, _ = first_batch
    forge = results["d_forge"]
    assert forge.total == 0
    assert {"processes", "grader-patched"} <= set(forge.flag_kinds), forge.flags


def test_a_detached_process_ends_with_its_submission(first_batch):
    results, _, _, _, _, _ = first_batch
    assert results["e_outlive"].total == 21  # its answers are its own
    assert "detached-processes" in results["e_outlive"].flag_kinds
    assert hosts_marker() == []


def test_killing_everything_in_sight_hurts_only_the_attacker(first_batch):
    results, _, _, _, seconds, mode = first_batch
    kill = results["g_kill"]
    # bwrap: the sandbox's init shrugs every signal off; user: signals reach the uid's own processes alone, and
    # kill(-1) spares its sender, the kernel
    assert (kill.status, kill.restarts) == ("ok", 0), (mode, kill.message)
    assert kill.total == 21
    assert seconds < 600


def test_no_network_and_no_way_into_the_hosts_namespaces(first_batch):
    results, _, _, _, _, _ = first_batch
    escape = results["i_escape"]
    assert escape.total == 0
    assert {"native", "network"} <= set(escape.flag_kinds), escape.flags


@pytest.mark.parametrize("attacker", sorted(ONLY_BWRAP_STOPS))
def test_what_only_bubblewrap_stops_earns_nothing_and_is_flagged(first_batch, attacker):
    results, _, _, _, _, mode = first_batch
    result = results[attacker]
    assert result.total == 0
    assert result.isolation.split()[0] == mode
    kind = {"i_escape": "network", "d_forge": "processes"}[attacker]
    assert kind in result.flag_kinds, (mode, ONLY_BWRAP_STOPS[attacker], result.flags)


def test_memory_spread_over_processes_is_counted_together(first_batch):
    results, _, _, _, _, _ = first_batch
    assert results["j_memory"].status == "memory", results["j_memory"].message


@pytest.fixture(scope="module")
def second_batch(bundle, tmp_path_factory):
    """The attacks inside the kernel (the library guard, hangs): the same under either isolation; run under bwrap."""
    if bwrap_unavailable() is not None:
        pytest.skip(f"no sandbox here: {bwrap_unavailable()}")
    root = tmp_path_factory.mktemp("second")
    subs, out = root / "submissions", root / "out"
    subs.mkdir()
    solution = bundle / "solution.ipynb"
    shutil.copy(solution, subs / "victim.ipynb")
    for name, source in hostile.BYPASSES.items():
        hostile.write(hostile.replaced(solution, "conv2d", source), subs / f"{name}.ipynb")
    hostile.write(hostile.hanging(solution, hostile.HANG_ON_STRIDE), subs / "hang.ipynb")
    hostile.write(hostile.hanging(solution, hostile.HANG_SWALLOWING), subs / "hang_swallowing.ipynb")
    report = grade_into(load_assignment(bundle), sorted(subs.glob("*.ipynb")), out, GradeSettings(jobs=2))
    return {r.submission: r for r in report.graded}


@pytest.mark.parametrize("name", sorted(hostile.BYPASSES))
def test_the_library_guard_survives_or_flags_each_bypass(second_batch, name):
    result = second_batch[name]
    points = {q.id: q.points for q in result.questions}
    assert points == {"conv2d_single": 5, "conv2d": 0, "max_pool2d": 4, "sobel": 4}, result.message
    conv2d = next(q for q in result.questions if q.id == "conv2d")
    assert any("does not allow" in o.message for o in conv2d.outcomes)
    assert result.flags or name in ("bypass_compile", "bypass_replace_mode"), result.flags


def test_bypasses_that_rewrite_the_grader_are_flagged(second_batch):
    assert "grader-patched" in second_batch["bypass_save"].flag_kinds
    assert "grader-patched" in second_batch["bypass_replace_mode"].flag_kinds
    assert "guard-tampered" in second_batch["bypass_disable_modes"].flag_kinds
    assert {"frames", "guard-tampered"} & set(second_batch["bypass_frames"].flag_kinds)


@pytest.mark.parametrize("name", ["hang", "hang_swallowing"])
def test_a_function_that_hangs_on_some_inputs_costs_only_the_checks_that_call_it(second_batch, name):
    result = second_batch[name]
    points = {q.id: q.points for q in result.questions}
    assert (points["conv2d_single"], points["max_pool2d"], points["sobel"]) == (5, 4, 4), result.message
    assert 0 < points["conv2d"] < 8
    conv2d = next(q for q in result.questions if q.id == "conv2d")
    assert any("did not finish within 4 s" in o.message for o in conv2d.outcomes)
    assert result.execution_time < 300  # far below the submission's budget (600 s)
    if name == "hang_swallowing":
        assert result.restarts >= 1


def test_the_honest_submission_next_to_the_attackers_is_untouched(second_batch):
    assert second_batch["victim"].total == 21 and second_batch["victim"].flags == []
