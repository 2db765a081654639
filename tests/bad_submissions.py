"""Broken submissions of every kind a batch must survive, built from the solution notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat

from conftest import cell_index_defining, notebook_with

UNINTERRUPTIBLE = """import time
while True:
    try:
        time.sleep(0.5)
    except KeyboardInterrupt:
        pass
"""
MEMORY_BOMB = """import torch
hoard = []
while True:
    hoard.append(torch.ones(10_000_000))
"""
FLOOD = """for i in range(400_000):
    print("all work and no play makes jack a dull boy", i)
"""

# name -> (status, total points, what it is)
EXPECTED = {
    "not_json": ("invalid", 0.0),
    "not_a_notebook": ("invalid", 0.0),
    "empty": ("invalid", 0.0),
    "syntax_error": ("ok", 21.0),
    "infinite_loop": ("timeout", 21.0),
    "uninterruptible_loop": ("timeout", 21.0),
    "exits_midway": ("crashed", 13.0),
    "memory_bomb": ("memory", 21.0),
    "floods_output": ("ok", 21.0),
}


def write_bad_submissions(solution: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.ipynb" for name in EXPECTED}
    paths["not_json"].write_text("this is { not JSON")
    paths["not_a_notebook"].write_text('{"hello": "world", "cells": "none"}')
    paths["empty"].write_text("")
    base = nbformat.read(solution, as_version=4)
    pool_cell = cell_index_defining(base, "max_pool2d")
    nbformat.write(notebook_with(solution, "def broken(:\n    pass", at=pool_cell), paths["syntax_error"])
    nbformat.write(notebook_with(solution, "while True:\n    pass"), paths["infinite_loop"])
    nbformat.write(notebook_with(solution, UNINTERRUPTIBLE), paths["uninterruptible_loop"])
    nbformat.write(notebook_with(solution, "import os\nos._exit(1)", at=pool_cell), paths["exits_midway"])
    nbformat.write(notebook_with(solution, MEMORY_BOMB), paths["memory_bomb"])
    nbformat.write(notebook_with(solution, FLOOD), paths["floods_output"])
    return paths
