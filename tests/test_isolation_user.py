"""The `user` sandbox (where bubblewrap cannot run): the kernel as an unprivileged uid of its own.

The kernel runs Python from this environment, so the folders above it must let other users pass
(`opened_environment`: o+x, never o+r, on any closed folder above it, as a Gradescope image's system Python has
them). The attacks of the red team run against this mode too (`test_redteam.py`, parametrised).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.cli.commands import grading_isolation
from autograder.config import Limits
from autograder.errors import ConfigError
from autograder.export.gradescope_run import choose_isolation
from autograder.kernel import isolation_user
from autograder.kernel.execute import execute_notebook
from autograder.kernel.isolation import IsolationUnavailable, library_dirs
from autograder.kernel.isolation_user import claim_uid, exposed, pick_isolation, processes_of, seal, uid_range
from autograder.kernel.probe import KernelStudent
from autograder.kernel.session import Session
from autograder.kernel.spec import KernelSpec
from conftest import notebook_with
from test_export import autograder_zip, gradescope_root, run_autograder  # noqa: F401 (a fixture)
from test_sandbox import notebook

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the user sandbox needs root")
LIMITS = Limits(cell_timeout=20, notebook_timeout=40, probe_timeout=10)


def opened_environment() -> str | None:
    """Let other users pass through the closed folders above this Python environment (o+x only); why the user
    sandbox still cannot run here, if it cannot."""
    if os.geteuid() != 0:
        return "the user sandbox needs root"
    for path in library_dirs():
        for parent in reversed(Path(path).parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                os.chmod(parent, os.stat(parent).st_mode | stat.S_IXOTH)
    isolation_user.user_unavailable.cache_clear()
    return isolation_user.user_unavailable()


def run(tmp_path, *sources, names=("a", "b", "c", "d")):
    path, nb = notebook(tmp_path, *sources)
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=7, isolation="user")
    with Session(path, None, spec) as session:
        report = execute_notebook(session, nb)
        values = {name: KernelStudent(session, 20).value(name).value for name in names}
        uid = session.box.user
    return report, values, session, uid


# ----------------------------------------------------------------------------- without kernels

def test_the_uid_range_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("TORCHGRADE_USER_UIDS", raising=False)
    assert (uid_range().start, uid_range().stop) == (64100, 64356)
    monkeypatch.setenv("TORCHGRADE_USER_UIDS", "70000-70003")
    assert list(uid_range()) == [70000, 70001, 70002, 70003]
    for bad in ("abc", "0-3", "9-2"):
        monkeypatch.setenv("TORCHGRADE_USER_UIDS", bad)
        with pytest.raises(IsolationUnavailable, match="TORCHGRADE_USER_UIDS"):
            uid_range()


@pytest.fixture
def open_tmp():
    """A folder that other users may enter (pytest's own are closed to them)."""
    folder = Path(tempfile.mkdtemp(prefix="tg-open-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def test_exposed_names_what_another_user_could_read(open_tmp):
    tmp_path = open_tmp
    open_folder, closed_folder = tmp_path / "open", tmp_path / "closed"
    open_folder.mkdir(mode=0o755)
    closed_folder.mkdir(mode=0o700)
    (closed_folder / "reference.py").write_text("x")
    (tmp_path / "readable.py").write_text("x")
    os.chmod(tmp_path / "readable.py", 0o644)
    (tmp_path / "private.py").write_text("x")
    os.chmod(tmp_path / "private.py", 0o600)
    paths = [open_folder, closed_folder, closed_folder / "reference.py", tmp_path / "readable.py",
             tmp_path / "private.py"]
    assert exposed(paths) == [open_folder.resolve(), (tmp_path / "readable.py").resolve()]


@root_only
def test_seal_closes_out_and_refuses_readable_secrets(open_tmp):
    tmp_path = open_tmp
    out, bundle = tmp_path / "out", tmp_path / "bundle"
    bundle.mkdir(mode=0o755)
    with pytest.raises(IsolationUnavailable, match=str(bundle)):
        seal(out, [bundle])
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    os.chmod(bundle, 0o700)
    seal(out, [bundle])


@root_only
def test_each_open_sandbox_holds_its_own_uid(monkeypatch):
    monkeypatch.setenv("TORCHGRADE_USER_UIDS", "64350-64351")
    first, lock = claim_uid()
    second, lock2 = claim_uid()
    assert first != second
    with pytest.raises(IsolationUnavailable, match="in use"):
        claim_uid()
    os.close(lock)
    again, lock3 = claim_uid()
    assert again == first
    os.close(lock2)
    os.close(lock3)


def test_auto_picks_bwrap_then_user_as_root_then_none(monkeypatch):
    import autograder.kernel.isolation as isolation

    monkeypatch.setattr(isolation, "bwrap_unavailable", lambda: None)
    assert pick_isolation("auto")[0] == "bwrap"
    monkeypatch.setattr(isolation, "bwrap_unavailable", lambda: "no user namespaces")
    monkeypatch.setattr(isolation_user, "user_unavailable", lambda: None)
    assert pick_isolation("auto")[0] == "user"
    monkeypatch.setattr(isolation_user, "user_unavailable", lambda: "it needs root")
    assert pick_isolation("auto") == ("none", "no bubblewrap sandbox (no user namespaces) and no user sandbox "
                                              "(it needs root)")
    assert pick_isolation("user") == ("user", "")


def test_grade_refuses_where_auto_finds_no_sandbox_and_run_autograder_knows_the_names(monkeypatch):
    import autograder.kernel.isolation as isolation

    monkeypatch.setattr(isolation, "bwrap_unavailable", lambda: "no user namespaces")
    monkeypatch.setattr(isolation_user, "user_unavailable", lambda: "it needs root")
    args = argparse.Namespace(isolation="auto", no_isolation=False)
    assert grading_isolation(args) == "bwrap"  # which the batch refuses, naming what is missing
    assert grading_isolation(argparse.Namespace(isolation="auto", no_isolation=True)) == "none"
    with pytest.raises(ConfigError, match="contradicts"):
        grading_isolation(argparse.Namespace(isolation="user", no_isolation=True))
    assert choose_isolation("user") == "user"
    assert choose_isolation("auto") == "none"
    with pytest.raises(ConfigError, match="auto, bwrap, user, none"):
        choose_isolation("chroot")


# ----------------------------------------------------------------------------- real kernels

@pytest.fixture(scope="module")
def user_sandbox():
    reason = opened_environment()
    if reason:
        pytest.skip(f"no user sandbox here: {reason}")


@pytest.mark.slow
def test_the_kernel_runs_as_its_own_uid_and_reaches_nothing_of_the_graders(user_sandbox, tmp_path):
    secret = tmp_path / "bundle"  # the grader's: a root-only folder, its files readable as checked out
    secret.mkdir(mode=0o700)
    (secret / "reference.py").write_text("ANSWER = 42\n")
    os.chmod(secret / "reference.py", 0o644)
    out = Path("/tmp") / f"tg-user-out-{os.getpid()}"  # a folder others may enter, not write
    out.mkdir(mode=0o755, exist_ok=True)
    try:
        report, values, session, uid = run(
            tmp_path,
            "import os\na = [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()]",
            "def attempt(action):\n    try:\n        action()\n        return 'done'\n"
            "    except Exception as e:\n        return type(e).__name__\n"
            f"b = attempt(lambda: open({str(secret / 'reference.py')!r}).read())\n"
            f"c = attempt(lambda: open({str(out / 'ghost.json')!r}, 'w').write('x'))\n"
            f"d = attempt(lambda: open('/proc/{os.getpid()}/environ', 'rb').read())",
        )
    finally:
        ghost_written = (out / "ghost.json").exists()
        for leftover in out.iterdir():
            leftover.unlink()
        out.rmdir()
    assert report.status == "ok"
    assert uid in uid_range()
    assert values["a"] == [uid, uid, uid, []]
    assert values["b"] == "PermissionError"
    assert values["c"] == "PermissionError" and not ghost_written
    assert values["d"] == "PermissionError"
    assert session.isolation_text.startswith("user")


@pytest.mark.slow
def test_every_process_of_the_uid_ends_with_the_sandbox(user_sandbox, tmp_path):
    marker = f"tg-user-outlive-{os.getpid()}"
    report, values, session, uid = run(
        tmp_path,
        "import os, sys, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\na = os.getpid()",
        names=("a",),
    )
    assert report.status == "ok"
    assert "detached-processes" in {f.kind for f in session.findings}
    time.sleep(0.2)
    assert processes_of(uid) == []
    assert running_with(marker) == []


def running_with(marker: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]


@pytest.mark.slow
def test_run_autograder_under_user_closes_the_bundle_and_says_so(user_sandbox, autograder_zip, convolution_build,
                                                                 open_tmp):
    """Gradescope's container: /autograder as Gradescope makes it (open to others), the student trying to read
    the reference and to write its own results."""
    planted = open_tmp / "results" / "planted.json"
    attack = ("import json\n"
              f"try:\n    stolen = open({str(open_tmp / 'source' / 'bundle' / 'reference.py')!r}).read()\n"
              "except OSError as e:\n    stolen = repr(e)\n"
              f"try:\n    open({str(planted)!r}, 'w').write(json.dumps({{'score': 99, 'tests': []}}))\n"
              "except OSError:\n    pass\n")
    notebook_bytes = nbformat.writes(notebook_with(convolution_build.autograder_dir / "solution.ipynb", attack))
    root = gradescope_root(autograder_zip, open_tmp, {"convolution.ipynb": notebook_bytes.encode()})
    data = run_autograder(root, TORCHGRADE_ISOLATION="user")
    assert data["extra_data"]["isolation"].split()[0] == "user"
    assert data["score"] == 21, data["output"]
    assert stat.S_IMODE(os.stat(root / "source" / "bundle").st_mode) == 0o700
    assert not planted.exists()


@pytest.fixture
def closed_checkout():
    """This checkout's master notebooks and references closed to other users while a test grades under `user`
    (grade refuses otherwise); root, who runs every other test, reads them as before."""
    from autograder.cli.commands import checkout_secrets

    modes = {path: stat.S_IMODE(os.stat(path).st_mode) for path in checkout_secrets()}
    for path, mode in modes.items():
        os.chmod(path, mode & ~0o007)
    yield
    for path, mode in modes.items():
        os.chmod(path, mode)


@pytest.mark.slow
def test_grade_isolation_user_from_the_command_line(user_sandbox, closed_checkout, convolution_build, tmp_path,
                                                    open_tmp):
    bundle = convolution_build.autograder_dir
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(bundle / "solution.ipynb", subs / "alice.ipynb")
    command = [sys.executable, "-m", "autograder.cli", "grade", str(bundle), str(subs), "--isolation", "user"]
    done = subprocess.run([*command, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "out" / "results" / "alice.json").read_text())
    assert data["score"] == 21 and data["extra_data"]["isolation"].split()[0] == "user"
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o700

    exposed_subs = open_tmp / "subs"  # submissions any user may read: refused, named
    shutil.copytree(subs, exposed_subs)
    os.chmod(exposed_subs, 0o755)
    done = subprocess.run([*command[:5], str(exposed_subs), *command[6:], "--out", str(tmp_path / "out2")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "the kernel's user could read" in " ".join((done.stdout + done.stderr).split())


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")
def test_a_uid_is_used_again_only_once_the_folders_a_killed_grader_left_for_it_are_gone():
    """A sandbox's folders go on the reaper thread after its kernel is killed; a grader killed before that leaves
    them, owned by the kernel's uid. The next claim of that uid removes them first: no later kernel of that uid reads
    an earlier submission's notebook. Another uid's folders are left alone."""
    uid, other = 64000 + os.getpid() % 1000, 65000 + os.getpid() % 500
    left = [Path(tempfile.mkdtemp(prefix="torchgrade-")) for _ in range(2)]
    for root, owner in zip(left, (uid, other)):
        (root / "files").mkdir()
        (root / "files" / "sub.ipynb").write_text("{}")
        os.chown(root / "files", owner, owner)
    try:
        isolation_user.remove_leftovers(uid)
        assert not left[0].exists() and (left[1] / "files" / "sub.ipynb").exists()
    finally:
        for root in left:
            shutil.rmtree(root, ignore_errors=True)
