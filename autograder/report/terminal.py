"""What `torchgrade` prints on the terminal: progress lines and the gradebook table.

Everything that comes from data (submission names, messages, paths, question ids) is escaped, so
rich never reads `bob[red]` or `output[i, j]` as markup. The gradebook fits the terminal: question
columns are numbered with a legend when their names do not fit, and a terminal too narrow even
for that gets one line per submission.
"""

from __future__ import annotations

import sys

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from ..results import SubmissionResult

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
FIXED = ("submission", "total", "max_total", "status", "flags")


def print_progress(result: SubmissionResult, out: Console | None = None) -> None:
    colour = "green" if result.status == "ok" else "yellow"
    flags = f"  [red]flagged: {escape(', '.join(result.flag_kinds))}[/]" if result.flags else ""
    why = f": {escape(result.message)}" if result.status != "ok" and result.message else ""
    (out or console).print(f"  {escape(f'{result.submission:<28}')} {result.total:>6g} / {result.max_total:g}  "
                           f"[{colour}]{escape(result.status)}{why}[/]  ({result.execution_time:.1f} s){flags}")


def cell(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:g}"  # NaN: an empty flags cell
    return str(value)


def gradebook_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in frame.columns:
        table.add_column(escape(str(column)), justify="left" if column in ("submission", "status", "flags")
                         else "right", no_wrap=column != "flags")
    for row in frame.itertuples(index=False):
        table.add_row(*[escape(cell(v)) for v in row])
    return table


def legend_lines(items: list[str], width: int) -> list[str]:
    """Items two spaces apart, wrapped between items, never inside one."""
    lines = [""]
    for item in items:
        if lines[-1] and len(lines[-1]) + 2 + len(item) > width:
            lines.append("")
        lines[-1] += ("  " if lines[-1] else "") + item
    return lines


def natural_width(out: Console, table: Table) -> int:
    """The width the table takes when no column is squeezed."""
    return Measurement.get(out, out.options.update_width(10_000), table).maximum


def print_gradebook(frame: pd.DataFrame, out: Console | None = None) -> None:
    out = out or console
    questions = [c for c in frame.columns if c not in FIXED]
    title = "gradebook"
    if "max_total" in frame and frame["max_total"].nunique() == 1:  # one maximum: said once, in the title
        title = f"gradebook (out of {cell(frame['max_total'].iloc[0])})"
        frame = frame.drop(columns="max_total")
    table = gradebook_table(frame, title)
    if natural_width(out, table) <= out.width:
        out.print(table)
        return
    numbered = {q: f"Q{i}" for i, q in enumerate(questions, 1)}
    table = gradebook_table(frame.rename(columns=numbered), title)
    if natural_width(out, table) <= out.width:
        out.print(table)
        for line in legend_lines([f"{n} = {q}" for q, n in numbered.items()], out.width):
            out.print(line, markup=False)
        return
    out.print(title, style="bold")  # too narrow even for numbered columns: a line per submission
    for row in frame.itertuples(index=False):
        data = dict(zip(frame.columns, row))
        scores = ", ".join(f"{q} {cell(data[q])}" for q in questions)
        flags = f"  flags: {cell(data['flags'])}" if cell(data.get("flags", "")) else ""
        out.print(f"{data['submission']}: {cell(data['total'])} {data['status']} ({scores}){flags}", markup=False)
