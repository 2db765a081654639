"""One memory limit and one process limit over everything a sandbox runs, detached or not.

Where the grader may create cgroups (v1 `memory` and `pids` controllers, usually as root), each
sandbox gets its own pair: the kernel joins them before it exists, so every process it starts
is counted, and the memory controller stops allocations at the limit (the OOM killer is off:
the watchdog ends the whole sandbox instead, so the outcome does not depend on which process the
kernel would have picked). Elsewhere, a watchdog sums the resident memory of every process in
the sandbox's PID namespace, and the process limit is RLIMIT_NPROC, which the kernel counts per
user namespace (each sandbox has its own).

CPU: where the v1 `cpu` controller is mounted too, each sandbox also gets a cpu cgroup of the default weight
(`cpu.shares`), so busy sandboxes share the cores equally however many processes, threads or Unix sessions
each runs, and an idle sandbox's share goes to the others. Without it, the host's scheduler shares CPU
between processes, or between sessions where autogroup is on: a notebook that forks busy processes, each
calling `setsid()`, then takes as many shares as it has processes (up to the process limit), and nothing
here bounds it but the time limits of its neighbours (the README says so).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import psutil

CONTROLLERS = ("memory", "pids", "cpu")
CPU_SHARES = 1024  # cgroup v1's default weight: each sandbox weighs as much as one ordinary process


@lru_cache(maxsize=1)
def cgroup_roots() -> dict[str, Path]:
    """Where this process's own v1 `memory`, `pids` and `cpu` cgroups are, by controller."""
    mounts: dict[str, Path] = {}
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(extra) >= 3 and extra[0] == "cgroup":
                for controller in CONTROLLERS:
                    if controller in extra[2].split(","):
                        mounts[controller] = Path(fields[4])
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                own[controller] = path
    except (OSError, ValueError):
        return {}
    return {c: mounts[c] / own[c].lstrip("/") for c in CONTROLLERS if c in mounts and c in own}


@lru_cache(maxsize=1)
def cgroups_unavailable() -> str | None:
    """Why per-sandbox cgroups cannot be made here, or None when they can."""
    roots = cgroup_roots()
    missing = [c for c in ("memory", "pids") if c not in roots]
    if missing:
        return f"no cgroup v1 {' or '.join(missing)} controller is mounted"
    return _cannot_create("memory") or _cannot_create("pids")


@lru_cache(maxsize=1)
def cpu_cgroup_unavailable() -> str | None:
    """Why a sandbox cannot get a `cpu` cgroup of its own here, or None when it can."""
    if "cpu" not in cgroup_roots():
        return "no cgroup v1 cpu controller is mounted"
    return _cannot_create("cpu")


def _cannot_create(controller: str) -> str | None:
    root = cgroup_roots()[controller]
    probe = root / f"torchgrade-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot create a {controller} cgroup under {root} ({exc.strerror})"
    return None


class Cgroups:
    """A memory and a pids cgroup for one sandbox, and a cpu cgroup where the controller is there.

    Named `torchgrade-<pid>-<random>`: a grader killed with its sandboxes open leaves their cgroups behind, and a later
    process may get its pid (a name with a counter clashed with them, and no kernel could start); those of processes
    that are gone are removed as this process makes its first (`remove_stale_cgroups`)."""

    def __init__(self, memory_bytes: int, processes: int):
        sweep_once()
        roots = cgroup_roots()
        cpu = cpu_cgroup_unavailable() is None
        for _ in range(8):  # (a clash of random names is all but impossible)
            name = f"torchgrade-{os.getpid()}-{secrets.token_hex(6)}"
            self.memory, self.pids = roots["memory"] / name, roots["pids"] / name
            self.cpu = roots["cpu"] / name if cpu else None
            try:
                self.memory.mkdir()
                break
            except FileExistsError:
                continue
        self.pids.mkdir()
        if self.cpu is not None:  # one scheduling entity of the default weight, whatever runs inside
            self.cpu.mkdir()
            (self.cpu / "cpu.shares").write_text(str(CPU_SHARES))
        (self.memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        swap = self.memory / "memory.memsw.limit_in_bytes"
        if swap.exists():
            try:
                swap.write_text(str(memory_bytes))
            except OSError:
                pass
        (self.memory / "memory.oom_control").write_text("1")
        (self.pids / "pids.max").write_text(str(processes))

    @property
    def groups(self) -> list[Path]:
        return [self.memory, self.pids, *([self.cpu] if self.cpu is not None else [])]

    @property
    def procs_files(self) -> list[str]:
        return [str(group / "cgroup.procs") for group in self.groups]

    def under_oom(self) -> bool:
        try:
            return "under_oom 1" in (self.memory / "memory.oom_control").read_text()
        except OSError:
            return False

    def limit_hits(self) -> int:
        """How many times the sandbox's memory reached its limit (an allocation that failed, or had to wait)."""
        try:
            return int((self.memory / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return 0

    def usage(self) -> int:
        try:
            return int((self.memory / "memory.usage_in_bytes").read_text())
        except (OSError, ValueError):
            return 0

    def anonymous(self) -> int:
        """Bytes of anonymous memory (the processes' own, not the files' pages the kernel may drop) in the group."""
        try:
            for line in (self.memory / "memory.stat").read_text().splitlines():
                if line.startswith("total_rss "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def peak(self) -> int:
        try:
            return int((self.memory / "memory.max_usage_in_bytes").read_text())
        except (OSError, ValueError):
            return 0

    def pids_peak(self) -> int:
        try:
            return int((self.pids / "pids.peak").read_text())
        except (OSError, ValueError):
            return 0

    def close(self, wait: float = 5.0) -> None:
        """Remove the cgroups once the processes in them are gone."""
        deadline = time.monotonic() + wait
        for group in self.groups:
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


@lru_cache(maxsize=1)
def sweep_once() -> None:
    remove_stale_cgroups()


STALE_AFTER = 60.0  # seconds: a younger cgroup may be another PID namespace's grader's, its kernel about to join it


def remove_stale_cgroups() -> None:
    """Empty cgroups left by a grader that was killed (SIGKILL leaves no chance to clean up): those of processes that
    are gone, made over a minute ago."""
    now = time.time()
    for root in cgroup_roots().values():
        try:
            for group in root.glob("torchgrade-*"):
                pid = group.name.split("-")[1]
                if pid.isdigit() and not psutil.pid_exists(int(pid)) and now - group.stat().st_mtime > STALE_AFTER:
                    try:
                        group.rmdir()
                    except OSError:
                        pass
        except OSError:
            pass


def private_bytes(pids: Iterable[int]) -> int:
    """Memory the processes hold that no process outside them shares (USS): a kernel's pages still shared
    with the zygote it was forked from are not the submission's, and are not counted twice for its children."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().uss
        except psutil.Error:
            continue
    return total


AT_THE_LIMIT = 64 * 2**20  # anonymous memory this close to the limit (at most a sixteenth of it)...
AT_THE_LIMIT_FOR = 1.0  # ...for this long (seconds) is the limit reached


class Watchdog(threading.Thread):
    """Ends a sandbox when everything it runs together passes the memory limit (or, where no pids cgroup
    and no RLIMIT_NPROC can count them, the process limit: RLIMIT_NPROC does not bind root).

    With a memory cgroup, the limit is passed when the group waits at it (its OOM killer is off: `under_oom`), or when
    its anonymous memory stays within `AT_THE_LIMIT` (at most a sixteenth) of the limit for `AT_THE_LIMIT_FOR` seconds: there the kernel
    can only evict the group's own file pages (its code) and read them back, over and over, so the group may crawl
    at the limit for as long as the notebook's time allows before it waits, more so on a busy machine; the
    submission would be stopped by its time limit rather than its memory, depending on the machine."""

    def __init__(self, limit_bytes: int, processes: Callable[[], list[int]], kill: Callable[[], None],
                 cgroups: Cgroups | None = None, interval: float = 0.05, process_limit: int | None = None):
        super().__init__(daemon=True)
        self.limit, self.processes, self.kill, self.cgroups = limit_bytes, processes, kill, cgroups
        self.process_limit = process_limit if os.geteuid() == 0 else None
        self.interval = interval
        self.tripped: str | None = None  # "memory" | "processes"
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        near_since, margin = None, min(AT_THE_LIMIT, self.limit // 16)
        while not self._stop_event.wait(self.interval):
            if self.cgroups is not None:
                now, near = time.monotonic(), self.cgroups.anonymous() >= self.limit - margin
                near_since = (near_since or now) if near else None
                over = self.cgroups.under_oom() or (near_since is not None and now - near_since >= AT_THE_LIMIT_FOR)
                self.peak = max(self.peak, self.cgroups.usage())
            else:
                pids = self.processes()
                used = private_bytes(pids)
                self.peak = max(self.peak, used)
                over = used > self.limit
                if self.process_limit is not None and len(pids) > self.process_limit:
                    self.tripped = "processes"
                    self.kill()
                    return
            if over:
                self.tripped = "memory"
                self.kill()
                return

    def stop(self) -> None:
        self._stop_event.set()
        if self.cgroups is not None:
            self.peak = max(self.peak, self.cgroups.peak())
