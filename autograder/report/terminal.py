"""What `torchgrade` prints on the terminal: progress (with an ETA), the gradebook table and a summary line.

Progress is rich's bar on an interactive terminal (the per-submission lines printed above it), and plain
lines elsewhere (a log, CI, a pipe): each submission's line ends with how many are done and an ETA.

Everything that comes from data (submission names, messages, paths, question ids) is escaped, so
rich never reads `bob[red]` or `output[i, j]` as markup. The gradebook fits the terminal: question
columns are numbered with a legend when their names do not fit, and a terminal too narrow even
for that gets one line per submission.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Callable, Iterable

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..outcomes import STATUSES, SubmissionResult

if TYPE_CHECKING:
    import pandas as pd

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
FIXED = ("submission", "total", "max_total", "status", "flags")
SOMETIMES_COLUMNS = ("review", "raw_total", "late", "penalty")  # shown only where a row has something in them


def quiet(frame: pd.DataFrame, column: str) -> bool:
    """Whether a column says nothing: empty everywhere, or (raw_total) the total everywhere."""
    if column == "raw_total":
        return bool((frame["raw_total"] == frame["total"]).all())
    return all(cell(v) == "" for v in frame[column])


def print_progress(result: SubmissionResult, out: Console | None = None, position: str = "") -> None:
    colour = "green" if result.status == "ok" else "yellow"
    flags = f"  [red]flagged: {escape(', '.join(result.flag_kinds))}[/]" if result.flags else ""
    why = f": {escape(result.message)}" if result.status != "ok" and result.message else ""
    where = f"  [dim]{escape(position)}[/]" if position else ""
    (out or console).print(f"  {escape(f'{result.submission:<28}')} {result.total:>6g} / {result.max_total:g}  "
                           f"[{colour}]{escape(result.status)}{why}[/]  ({result.execution_time:.1f} s){flags}{where}")


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"


class BatchProgress:
    """The `on_result` of a batch of `total` submissions (or of as many as `begin` is told): rich's progress bar
    (done/total, elapsed, ETA) where `out` is an interactive terminal, else plain lines, each ending with
    `done/total, ETA`. Use it as a context manager (the bar stops on leaving, also on an interrupt)."""

    def __init__(self, total: int, out: Console | None = None, clock: Callable[[], float] = time.monotonic):
        self.out, self.total, self.clock = out or console, total, clock
        self.done, self.start, self.bar, self.task = 0, clock(), None, None

    def __enter__(self) -> "BatchProgress":
        if self.total:
            self.begin(self.total)
        return self

    def begin(self, total: int) -> None:
        """The batch knows how many it grades (its `on_start`): the clock and the bar start now."""
        self.total, self.start = total, self.clock()
        if self.out.is_interactive and total and self.bar is None:
            self.bar = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), console=self.out, transient=True)
            self.task = self.bar.add_task("grading", total=total)
            self.bar.start()

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.stop()

    def eta(self) -> float:
        """Seconds left at the pace so far (submissions graded in parallel included)."""
        return (self.clock() - self.start) / self.done * (self.total - self.done) if self.done else 0.0

    def __call__(self, result: SubmissionResult) -> None:
        self.done += 1
        if self.bar:
            print_progress(result, self.out)  # above the bar
            self.bar.advance(self.task)
            return
        left = f"ETA {duration(self.eta())}" if self.done < self.total else "all done"
        print_progress(result, self.out, f"{self.done}/{self.total} done, {left}")


def summary_line(results: Iterable[SubmissionResult], seconds: float, skipped: int = 0) -> str:
    """One line for a whole batch: how many, their statuses, the mean score, the time and the flagged."""
    results = list(results)
    if not results:
        return "nothing new to grade: the gradebook holds the grades given before" if skipped else "nothing to grade"
    counts = Counter(r.status for r in results)
    statuses = ", ".join(f"{counts[s]} {s}" for s in [*STATUSES, *sorted(set(counts) - set(STATUSES))] if counts[s])
    mean = f"mean {sum(r.total for r in results) / len(results):.3g} / {max(r.max_total for r in results):g}"
    again = f"; {skipped} already graded, skipped" if skipped else ""
    return (f"graded {len(results)} in {duration(seconds)} ({statuses or 'none'}); {mean}; "
            f"{sum(bool(r.flags) for r in results)} flagged{again}")


def print_summary(results: Iterable[SubmissionResult], seconds: float, skipped: int = 0,
                  out: Console | None = None) -> None:
    (out or console).print(summary_line(results, seconds, skipped), style="bold", markup=False)


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
    frame = frame.drop(columns=[c for c in SOMETIMES_COLUMNS if c in frame and quiet(frame, c)])  # nothing to say
    questions = [c for c in frame.columns if c not in FIXED + SOMETIMES_COLUMNS]
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
