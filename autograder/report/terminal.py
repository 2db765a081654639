"""What `torchgrade` prints on the terminal: progress lines and the gradebook table."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from ..results import SubmissionResult

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def print_progress(result: SubmissionResult) -> None:
    colour = "green" if result.status == "ok" else "yellow"
    flags = f"  [red]flagged: {', '.join(result.flag_kinds)}[/]" if result.flags else ""
    console.print(f"  {result.submission:<28} {result.total:>6g} / {result.max_total:g}  "
                  f"[{colour}]{result.status}[/]  ({result.execution_time:.1f} s){flags}")


def print_gradebook(frame) -> None:
    table = Table(title="gradebook")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column in ("submission", "status") else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
