"""Execute a submission's cells in its session's kernel, whatever the cells do.

Every cell runs even after an error. A time limit (per cell, the whole notebook's, or the
submission's budget) stops the run; so does the kernel's death. After a stop, the grader still
needs a kernel holding what the student defined before it: an interrupted kernel that answers
again is kept; otherwise the session replays the cells that had run in a fresh kernel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import nbformat

from .session import CellRun, Session, cell_label


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


def execute_notebook(session: Session, nb: nbformat.NotebookNode) -> ExecutionReport:
    limits = session.spec.limits
    report = ExecutionReport()
    deadline = time.monotonic() + session.budget.limit(limits.notebook_timeout)
    session.nb = session.client.nb = nb
    for index, cell in code_cells(nb):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            report.status = "timeout"
            report.message = f"the notebook's time limit ({notebook_limit(session):g} s) ran out before " \
                             f"{cell_label(cell, index)}"
            break
        budget = min(limits.cell_timeout, remaining)
        hits = session.memory_limit_hits()
        run = session.run_cell(cell, index, budget)
        report.cells.append(run)
        if run.status in ("ok", "error") and session.memory_limit_hits() > hits:
            # the kernel lived, but the memory limit stopped what the cell asked for (socket buffers, /dev/shm,
            # an allocation): the memory limit stopped the notebook, whatever the cell made of the failure
            report.status = "memory"
            report.message = f"{run.label} reached the memory limit ({limits.memory_mb} MiB)"
            break
        if run.status == "timeout":
            report.status = "timeout"
            report.message = f"{run.label} was stopped by the " + (
                f"notebook's time limit ({notebook_limit(session):g} s)" if budget < limits.cell_timeout
                else f"cell time limit ({limits.cell_timeout:g} s)")
            if not session.interrupt():
                report.replayed = session.restart(f"{run.label} did not stop when interrupted")
            break
        if run.status == "dead":
            if session.killed_for_memory:
                report.status = "memory"
                report.message = f"{run.label} passed the memory limit ({limits.memory_mb} MiB)"
            elif session.killed_for_processes:
                report.status = "crashed"
                report.message = f"{run.label} passed the process limit ({limits.processes} processes)"
            else:
                report.status = "crashed"
                report.message = f"the kernel died while running {run.label}"
            report.replayed = session.restart(report.message)
            break
    return report


def notebook_limit(session: Session) -> float:
    return min(session.spec.limits.notebook_timeout, session.budget.seconds)


def code_cells(nb: nbformat.NotebookNode):
    return [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
