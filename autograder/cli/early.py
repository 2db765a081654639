"""What `torchgrade grade` starts before anything else: imported by the parser, before the commands' own imports.

Light on purpose (the configuration, the zygote's launcher, the standard library): each hundredth of a second spent
before the zygote starts is one more before the first result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import GradeSettings


def start_kernels_early(args: argparse.Namespace) -> None:
    """The batch's kernel fork server, started before this process imports torch and loads the checks (each about a
    second): a local CPU batch's kernels need only the assignment's seed and the thread count to be known. If what
    the batch resolves differs, it starts the zygote it needs then, as it would have anyway."""
    from ..config import AssignmentConfig
    from ..kernel.machine import kernel_threads
    from ..kernel.spec import KernelSpec
    from ..kernel.zygote import notebook_modules, prestart_zygote

    root = Path(args.assignment)
    if args.device != "cpu" or args.executor != "local" or not (root / "assignment.toml").is_file():
        return
    try:
        config = AssignmentConfig.load(root / "assignment.toml")
    except Exception:  # said properly once the assignment loads
        return
    solution = root / "solution.ipynb" if (root / "solution.ipynb").is_file() else next(iter(sorted(
        root.glob("*.ipynb"))), None)
    threads = kernel_threads(GradeSettings(jobs=args.jobs, threads=args.threads))
    if args.jobs > 1:  # and the server the workers fork from, importing the grader meanwhile: started first, as it
        from ..grading.warm import start_warm_server  # has more to import than the zygote

        start_warm_server("autograder.grading.local_pool")
    prestart_zygote(KernelSpec(limits=config.limits, threads=threads, device="cpu", seed=config.seed),
                    notebook_modules(solution) if solution else None)
