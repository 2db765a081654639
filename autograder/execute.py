"""Execute a submission's cells in the sandbox's kernel, whatever the cells do.

Every cell runs even after an error. A time limit (per cell, or for the whole notebook)
stops the run; so does the kernel's death. After a stop, the grader still needs a kernel
holding what the student defined before it: an interrupted kernel that answers again is
kept, otherwise the cells before the fatal one are re-run in a fresh kernel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .sandbox import Kernel, Sandbox

MAX_ERROR = 2000


@dataclass
class CellRun:
    index: int
    status: str  # ok | error | timeout | dead
    seconds: float
    error: str = ""
    label: str = ""


@dataclass
class ExecutionReport:
    status: str = "ok"  # ok | timeout | memory | crashed
    message: str = ""
    cells: list[CellRun] = field(default_factory=list)
    replayed: bool = False

    @property
    def cell_seconds(self) -> float:
        return sum(c.seconds for c in self.cells)

    @property
    def errors(self) -> list[CellRun]:
        return [c for c in self.cells if c.status == "error"]


def execute_notebook(box: Sandbox, nb: nbformat.NotebookNode) -> ExecutionReport:
    limits = box.spec.limits
    report = ExecutionReport()
    deadline = time.monotonic() + limits.notebook_timeout
    kernel = box.start_kernel(nb) if box.kernel is None else box.kernel
    kernel.client.nb = nb
    for index, cell in code_cells(nb):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            report.status = "timeout"
            report.message = (f"the notebook's time limit ({limits.notebook_timeout:g} s) ran out before "
                              f"{cell_label(cell, index)}")
            break
        budget = min(limits.cell_timeout, remaining)
        run = run_cell(kernel, cell, index, budget)
        report.cells.append(run)
        if run.status == "timeout":
            whole = budget < limits.cell_timeout
            report.status = "timeout"
            report.message = (
                f"{cell_label(cell, index)} was stopped by the "
                + (f"notebook's time limit ({limits.notebook_timeout:g} s)" if whole
                   else f"cell time limit ({limits.cell_timeout:g} s)")
            )
            if not kernel.recover():
                report.replayed = replay(box, nb, index)
            break
        if run.status == "dead":
            if kernel.killed_for_memory:
                report.status = "memory"
                report.message = f"{cell_label(cell, index)} passed the memory limit ({limits.memory_mb} MiB)"
            else:
                report.status = "crashed"
                report.message = f"the kernel died while running {cell_label(cell, index)}"
            report.replayed = replay(box, nb, index)
            break
    return report


def cell_label(cell: nbformat.NotebookNode, index: int) -> str:
    """`cell 12 (for epoch in range(...))`: the number, and the first line so students find it."""
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")
    return f"cell {index + 1} ({first[:60]})" if first else f"cell {index + 1}"


def code_cells(nb: nbformat.NotebookNode):
    return [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]


def run_cell(kernel: Kernel, cell: nbformat.NotebookNode, index: int, timeout: float) -> CellRun:
    kernel.client.timeout = max(1, int(timeout))
    start = time.monotonic()
    try:
        kernel.client.execute_cell(cell, index)
    except CellTimeoutError:
        return CellRun(index, "timeout", time.monotonic() - start)
    except DeadKernelError:
        return CellRun(index, "dead", time.monotonic() - start)
    seconds = time.monotonic() - start
    error = cell_error(cell)
    return CellRun(index, "error" if error else "ok", seconds, error, cell_label(cell, index))


def cell_error(cell: nbformat.NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:MAX_ERROR]
    return ""


def replay(box: Sandbox, nb: nbformat.NotebookNode, stop_index: int) -> bool:
    """Re-run, in a fresh kernel, the cells that ran before cell `stop_index`."""
    kernel = box.start_kernel(nb)
    for index, cell in code_cells(nb):
        if index >= stop_index:
            break
        replayed = nbformat.from_dict(cell)
        if run_cell(kernel, replayed, index, box.spec.limits.cell_timeout).status in ("timeout", "dead"):
            return False
    return True
