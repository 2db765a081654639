"""What this machine offers kernels: the cores this process may really use, and the device to run on.

`os.cpu_count()` counts the host's cores; a container or a cpuset may grant far fewer (a CPU affinity mask, a
cgroup CPU quota), and torch threads beyond those oversubscribe the cores and run many times slower. The
usable count is the smallest of the affinity mask and the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`),
rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..config import DEVICES, GradeSettings
from ..errors import ConfigError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The cores this process may use: its affinity mask, capped by its cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cgroup_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup, in cores (None: no quota, or no cgroup to read)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        path = path.lstrip("/")
        if controllers == "":  # cgroup v2: cpu.max is "max 100000" or "<quota> <period>"
            for folder in candidates(cgroup_root, path):
                value = read(folder / "cpu.max")
                if value:
                    quota, _, period = value.partition(" ")
                    if quota != "max" and period:
                        return int(quota) / int(period)
                    return None
        elif "cpu" in controllers.split(","):  # cgroup v1: cfs quota (-1: none) over cfs period
            for folder in candidates(cgroup_root / controllers, path) + candidates(cgroup_root / "cpu", path):
                quota, period = read(folder / "cpu.cfs_quota_us"), read(folder / "cpu.cfs_period_us")
                if quota and period:
                    return int(quota) / int(period) if int(quota) > 0 else None
    return None


def candidates(root: Path, path: str) -> list[Path]:
    """The cgroup's folder as the host sees it, and as a container sees it (its own cgroup mounted at the root)."""
    return [root / path, root] if path else [root]


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def kernel_threads(settings: GradeSettings) -> int:
    """torch/OpenMP threads per kernel: `--threads`, else this machine's usable cores shared by `--jobs`."""
    if settings.threads:
        return settings.threads
    return max(1, usable_cores() // max(1, settings.jobs))


def resolved_device(settings: GradeSettings) -> str:
    """`cpu` or `cuda`: `auto` picks CUDA where torch sees it; `cuda` where it does not is an error."""
    if settings.device not in DEVICES:
        raise ConfigError(f"unknown device {settings.device!r}; choose one of {', '.join(DEVICES)}")
    if settings.device == "cpu":  # said without importing torch: a batch's orchestrator may never need it
        return "cpu"
    import torch

    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device here "
                          "(use --device auto to fall back to the CPU)")
    if settings.device != "auto":
        return settings.device
    return "cuda" if torch.cuda.is_available() else "cpu"
