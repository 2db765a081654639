"""What shapes one kernel besides the notebook: limits, threads, device, seed, isolation, environment."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import GradeSettings, Limits
from .machine import kernel_threads, resolved_device

KERNEL_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH",
                   "VIRTUAL_ENV", "SYSTEMROOT")
FILE_SIZE_LIMIT = 1 << 30  # no file written by a kernel grows beyond 1 GiB
GRADING_ENV = "TORCHGRADE_GRADING"  # "1" in every grading kernel: the notebook's own self-check is a no-op


@dataclass(frozen=True)
class KernelSpec:
    """Everything that shapes one kernel besides the notebook itself."""

    limits: Limits
    threads: int
    device: str
    seed: int
    gpu: int | None = None  # which GPU this kernel sees, on a runner with several
    isolation: str = "bwrap"  # a name of the `isolation` registry (extensions.py)
    zygote: str | None = None  # the address of the batch's fork server; None: this process starts its own


def base_env(spec: KernelSpec) -> dict[str, str]:
    """The environment every kernel of a worker shares (the zygote's): cleaned, threads capped, seeded hash."""
    env = {k: os.environ[k] for k in KERNEL_ENV_KEEP if k in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    threads = str(spec.threads)
    env.update(
        PYTHONHASHSEED=str(spec.seed),
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        OMP_WAIT_POLICY="PASSIVE",  # idle OpenMP threads sleep: spinning ones take the core another kernel needs
        OPENBLAS_NUM_THREADS="1",  # numpy's own pool would start threads in the zygote; torch has its own
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        TORCHGRADE_DEVICE=spec.device,
        **{GRADING_ENV: "1"},
    )
    return env


def kernel_env(spec: KernelSpec, home: str, tmp: str) -> dict[str, str]:
    """One kernel's environment, with paths as the kernel sees them."""
    env = base_env(spec)
    env.update(HOME=home, TMPDIR=tmp, IPYTHONDIR=f"{tmp}/.ipython", MPLCONFIGDIR=f"{tmp}/.matplotlib",
               USER="student", LOGNAME="student")
    if spec.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif spec.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(spec.gpu)
    elif "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


def kernel_spec(assignment, settings: GradeSettings) -> KernelSpec:
    """The kernels of `assignment`'s submissions (anything with its `config`), graded as `settings` say."""
    limits = assignment.config.limits
    if settings.timeout is not None:
        limits = type(limits)(**{**vars(limits), "notebook_timeout": settings.timeout})
    return KernelSpec(limits=limits, threads=kernel_threads(settings), device=resolved_device(settings),
                      seed=assignment.config.seed, gpu=settings.gpu, isolation=settings.isolation,
                      zygote=settings.zygote)
