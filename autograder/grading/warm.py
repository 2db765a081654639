"""The server the grading workers fork from: one per process, importing the grader once.

Light on purpose (the standard library only): `torchgrade grade` starts it before it imports torch itself.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

# the grader, and what each worker's first submission would import on its own (the figures' colour maps and
# raster; matplotlib's Figure is imported by the first figure that uses one, IPython's cell transformer by the first
# cell with a magic, if any: the source scan reads Python as it is)
WARM_MODULES = ("autograder.grading.pipeline", "autograder.grading.worker", "matplotlib", "PIL.Image", "PIL.ImageDraw",
                "PIL.ImageFont")
FIRST, LAST = "autograder.grading.prewarm_start", "autograder.grading.prewarm"  # the collector off, then frozen and on


def warm_context(*modules: str) -> Any:
    """The "forkserver" multiprocessing context whose server, when it starts, imports the grader (torch and nbclient
    included), `WARM_MODULES` and `modules` once, with the collector off (`kernel/heap.py`), before any torch
    computation: worker processes forked from it start warm, with no forked OpenMP pool. (One server per process:
    whoever starts it first sets what it imported.)"""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the server when it starts
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([FIRST, *WARM_MODULES, *modules, LAST])
    return context


def start_warm_server(*modules: str) -> None:
    """Start that server now, importing in the background (the local pool's workers are forked from it later)."""
    from multiprocessing import forkserver

    warm_context(*modules)
    forkserver.ensure_running()
