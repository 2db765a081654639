"""`user`: a sandbox that needs only root, where bubblewrap cannot run (no user namespaces: Gradescope's
containers, Docker's default profile).

The kernel runs as an unprivileged user of its own: a uid from a range with no passwd entry (64100 to 64355
unless `TORCHGRADE_USER_UIDS=FIRST-LAST` says otherwise; uids that have a passwd entry are skipped), and a
group of the same number, with no supplementary groups. Each open sandbox holds its uid (a lock file in a
root-only folder, released when the grader closes the sandbox or dies), so `--jobs N` uses N uids and no two
sandboxes ever share one. On taking a uid, anything still running as it (left by a killed grader) is killed.

The kernel's working directory (the notebook and the student files), its /tmp and its runtime folder are
fresh folders owned by that uid, mode 0700, inside a folder of the grader that others may only traverse;
the grader's own connection file stays in a root-only folder. Everything else the grader holds must be
unreadable to "others": `grade` keeps `--out` at 0700 and refuses a bundle, source or submissions that
others can read (`seal`); `run_autograder` closes its bundle (0700). The kernel's limits: RLIMIT_NPROC
binds (the uid is not root), RLIMIT_FSIZE and no core files, the per-sandbox cgroups where root can make them
(memory, pids, cpu) else the memory watchdog over every process of the uid; the system call filter as in
bubblewrap's sandbox. At the end every process of the uid is killed (`kill(-1, SIGKILL)` sent as that uid,
until none is left), detached or not.

What it does not give, and bubblewrap does: a network namespace (the kernel has the host's network), a
private /proc (hidepid needs a mount namespace: the kernel sees every process's command line, though not
the environment, open files or memory of the grader's processes), a private /tmp and /dev/shm (shared with
the host, writable, bounded only per file by RLIMIT_FSIZE and, for /dev/shm, by the memory cgroup), and a
read-only view of the system (it sees whatever "others" may read on the host).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psutil

from .isolation import IsolationUnavailable, Sandbox, SandboxLimits, library_dirs, make_folders
from .limits import Cgroups, cgroups_unavailable

UIDS_ENV = "TORCHGRADE_USER_UIDS"
DEFAULT_UIDS = (64100, 64355)
LOCKS = Path("/run/torchgrade-uids")


def uid_range() -> range:
    """The kernel uids: `TORCHGRADE_USER_UIDS=FIRST-LAST`, else 64100-64355."""
    text = os.environ.get(UIDS_ENV, "")
    if not text:
        return range(DEFAULT_UIDS[0], DEFAULT_UIDS[1] + 1)
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise IsolationUnavailable(f"{UIDS_ENV} must be FIRST-LAST (two uids), not {text!r}") from None
    if not 0 < low <= high:
        raise IsolationUnavailable(f"{UIDS_ENV}={text!r}: the uids must be above 0, the first not above the last")
    return range(low, high + 1)


def lock_folder() -> Path:
    """The root-only folder holding one lock file per uid in use (`/run/torchgrade-uids`, else in $TMPDIR)."""
    folder = LOCKS if os.access(LOCKS.parent, os.W_OK) else Path(tempfile.gettempdir()) / "torchgrade-uids"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or st.st_uid != 0 or st.st_mode & 0o077:
        raise IsolationUnavailable(f"{folder} must be a folder of root's that nobody else may enter; remove it")
    return folder


def has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def claim_uid() -> tuple[int, int]:
    """A free kernel uid and the descriptor whose lock holds it (closing it frees the uid)."""
    folder = lock_folder()
    uids = uid_range()
    for uid in uids:
        if has_passwd_entry(uid):
            continue
        fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        kill_uid(uid)  # whatever a grader killed before it could clean up left running as this uid
        remove_leftovers(uid)  # and the folders it left, which a kernel of this uid could enter
        return uid, fd
    raise IsolationUnavailable(f"every kernel uid ({uids.start}-{uids.stop - 1}) is in use; widen {UIDS_ENV}")


def remove_leftovers(uid: int) -> None:
    """Sandbox folders of `uid` that a grader killed before it removed them (`Sandbox.finish`): their files belong
    to the uid, so the next kernel that runs as it could read them. Removed before the uid is used again."""
    def owner(path: Path) -> int | None:
        try:
            return path.stat().st_uid
        except OSError:
            return None

    for root in Path(tempfile.gettempdir()).glob("torchgrade-*"):
        if any(owner(root / name) == uid for name in ("files", "runtime", "tmp")):
            shutil.rmtree(root, ignore_errors=True)


def processes_of(uid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids is not None and uid in (uids.real, uids.effective, uids.saved):
            found.append(proc.pid)
    return found


def kill_uid(uid: int, wait: float = 5.0) -> None:
    """Kill every process of `uid`: `kill(-1, SIGKILL)` sent as that uid (the kernel signals every process of
    the uid at once, so none forks away between two kills), until none is left."""
    deadline = time.monotonic() + wait
    while processes_of(uid) and time.monotonic() < deadline:
        killer = os.fork()
        if killer == 0:  # no exec: nothing to read from the disk, as root or as the uid
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal, but this one
            finally:
                os._exit(0)
        try:
            os.waitpid(killer, 0)
        except ChildProcessError:  # reaped by a SIGCHLD handler of this process
            pass
        time.sleep(0.01)


def give_to(path: Path, uid: int) -> None:
    """`path` and everything below it owned by `uid`, folders 0700 and files 0600."""
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, uid)
        os.chmod(folder, 0o700)
        for name in files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o600)


def exposed(paths: list[Path]) -> list[Path]:
    """The paths that a user who is neither their owner nor in their group could read (the kernel's user)."""
    found = []
    for path in paths:
        path = Path(path).resolve()
        if not path.exists():
            continue
        reachable = all(os.stat(parent).st_mode & 0o001 for parent in path.parents)
        readable = os.stat(path).st_mode & (0o001 if path.is_dir() else 0o004)  # a folder: its files, by name
        if reachable and readable:
            found.append(path)
    return found


def seal(out: Path, secrets: list[Path]) -> None:
    """Before grading under `user`: `out` made (if need be) and closed to others (0700: nothing written below it
    can be reached), and a refusal naming each of `secrets` (the bundle or source, the submissions, the
    checkout's references) that the kernel's user could read. The kernel can find them: the grader's command
    line is in /proc for everyone to read. (What else the grader writes lies in folders of 0700 made by
    `tempfile`; the kernel's connection file must stay readable to the kernel, so no umask 077.)"""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    open_to_all = exposed(secrets)
    if open_to_all:
        shown = " ".join(str(p) for p in open_to_all)
        raise IsolationUnavailable(f"the kernel's user could read {shown}: under --isolation user, everything of the "
                                   f"grader must be closed to other users (chmod -R o-rwx {shown})")


@dataclass
class UserSandbox(Sandbox):
    """A sandbox whose processes are those of one uid."""

    lock: int | None = None  # the descriptor holding the uid

    def processes(self) -> list[int]:
        return processes_of(self.user) if self.user is not None else []

    def detached(self) -> list[str]:
        """Processes of the uid outside the kernel's process tree (daemonised), still running."""
        try:
            kernel = psutil.Process(self.kernel_pid) if self.kernel_pid else None
            tree = {kernel.pid, *(p.pid for p in kernel.children(recursive=True))} if kernel else set()
        except psutil.Error:
            tree = set()
        found = []
        for pid in self.processes():
            if pid in tree:
                continue
            try:
                proc = psutil.Process(pid)
                found.append(f"{' '.join(proc.cmdline())[:80] or proc.name()} ({pid})")
            except psutil.Error:
                continue
        return found

    def kill(self) -> None:
        if self.user is not None:
            kill_uid(self.user)

    def finish(self) -> None:
        super().finish()
        if self.lock is not None:  # once its folders are gone: no later kernel of this uid finds them
            os.close(self.lock)  # the uid is free again
            self.lock = None


class UserIsolation:
    """The kernel as an unprivileged uid of its own; needs root, not user namespaces."""

    name = "user"

    def check(self) -> None:
        reason = user_unavailable()
        if reason:
            raise IsolationUnavailable(f"cannot isolate submissions by user here: {reason}")

    def open(self, notebook: Path, student_files: Path | None, limits: SandboxLimits) -> Sandbox:
        uid, lock = claim_uid()
        root, files, runtime, private = make_folders(notebook, student_files)
        box = UserSandbox(root, files, runtime, private, str(files), str(runtime), str(root / "tmp"), lock=lock,
                          user=uid, rlimits={"core": 0, "fsize": limits.file_bytes, "nproc": limits.processes},
                          seccomp=True)
        try:
            (root / "tmp").mkdir()
            os.chmod(root, 0o711)  # the kernel may pass through to its own folders, not list them
            for folder in (files, runtime, root / "tmp"):
                give_to(folder, uid)
            box.cgroups = Cgroups(limits.memory_bytes, limits.processes) if cgroups_unavailable() is None else None
        except BaseException:
            box.close()
            raise
        return box


@lru_cache(maxsize=1)
def user_unavailable() -> str | None:
    """Why kernels cannot run as a uid of their own here, or None when they can (tried once per process)."""
    if not sys.platform.startswith("linux"):
        return "it needs Linux"
    if os.geteuid() != 0:
        return "it needs root (to switch to the kernel's user)"
    try:
        uid, lock = claim_uid()
    except (IsolationUnavailable, OSError) as exc:
        return getattr(exc, "message", None) or str(exc)
    try:
        check = "import os, sys\nfor p in sys.argv[1:]:\n    os.listdir(p)\n"
        done = subprocess.run([sys.executable, "-S", "-c", check, *map(str, library_dirs())], user=uid, group=uid,
                              extra_groups=[], env={}, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run a process as uid {uid} ({exc})"
    finally:
        os.close(lock)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        return (f"the Python environment is not readable by other users ({why}); install it where others may "
                "read it (a system Python, or open the folders above it with chmod o+x)")
    return None


def pick_isolation(wanted: str) -> tuple[str, str]:
    """The isolation `wanted` names (a registry name, or `auto`), and why `auto` settled where it did: bubblewrap
    where it runs, else `user` where this is root and the kernel's uid can run Python, else `none` (which a
    caller grading untrusted notebooks refuses)."""
    from .isolation import bwrap_unavailable

    if wanted != "auto":
        return wanted, ""
    no_bwrap = bwrap_unavailable()
    if no_bwrap is None:
        return "bwrap", ""
    no_user = user_unavailable()
    if no_user is None:
        return "user", f"no bubblewrap sandbox ({no_bwrap}): each kernel runs as an unprivileged uid of its own"
    return "none", f"no bubblewrap sandbox ({no_bwrap}) and no user sandbox ({no_user})"
