"""The gradebook CSV: a row per submission, from the grader's records.

Written from the records, never from files in `--out`: in full when a batch starts and when it ends (sorted,
atomically), and in between one appended row per result (`Gradebook`), so that its cost stays linear in the
batch and it is never behind by more than the result being written. A pending question's cell is empty;
`review` says why an instructor should look (`outcomes.SubmissionResult.needs_review`). `total` is the adjusted
total every export uses (`adjustments.py`: overrides, bonuses, the late penalty); `raw_total` the grader's own,
`late` the hours past the deadline (`unknown` where only the LMS's marker says so) and `penalty` its points.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..config import AssignmentConfig
from ..outcomes import SubmissionResult
from .writers import atomic_write

if TYPE_CHECKING:
    import pandas as pd

GRADEBOOK = "gradebook.csv"


def gradebook_columns(config: AssignmentConfig) -> list[str]:
    return ["submission", *config.question_ids, "total", "max_total", "status", "flags", "review", "raw_total",
            "late", "penalty"]


def gradebook_row(result: SubmissionResult, config: AssignmentConfig) -> dict[str, Any]:
    points = {q.id: ("" if q.pending else q.points) for q in result.questions}
    return {
        "submission": result.submission,
        **{q: points.get(q, 0.0) for q in config.question_ids},
        "total": result.total,
        "max_total": result.max_total,
        "status": result.status,
        "flags": ";".join(result.flag_kinds),
        "review": ";".join(review_reasons(result)),
        "raw_total": result.raw_total,
        "late": late_text(result.lateness),
        "penalty": result.lateness.get("penalty", "") or "",
    }


def late_text(late: dict[str, Any]) -> str:
    """Hours late ("" on time or without a deadline; `unknown` where only the LMS's late marker says so)."""
    if late.get("unknown"):
        return "unknown"
    return f"{late['hours_late']:g}" if late.get("periods") else ""


def review_reasons(result: SubmissionResult) -> list[str]:
    """Why an instructor should look at this row, in the policy's words; empty when the total is the grade."""
    reasons = []
    if result.ungraded:
        reasons.append("grader-failed")
    manual = [q.id for q in result.questions if q.pending and q.manual]
    if manual:
        reasons.append("needs-grading:" + ",".join(manual))
    pending = [q.id for q in result.questions if q.pending and not q.manual]
    if pending:
        reasons.append("pending:" + ",".join(pending))
    elif result.check_errors:
        reasons.append("check-error")
    if any(f["kind"] != "check-error" for f in result.flags):
        reasons.append("flagged")
    if result.lateness.get("unknown"):
        reasons.append("late-unknown")
    return reasons


def gradebook_frame(results: Iterable[SubmissionResult], config: AssignmentConfig) -> pd.DataFrame:
    rows = [gradebook_row(r, config) for r in sorted(results, key=lambda r: r.submission)]
    import pandas as pd  # a quarter of a second to import: when the gradebook is written, not when grading starts

    return pd.DataFrame(rows, columns=gradebook_columns(config))


def write_gradebook(out: Path, config: AssignmentConfig, results: Iterable[SubmissionResult]) -> pd.DataFrame:
    """The gradebook file, and its table."""
    results = list(results)
    write_gradebook_rows(out, config, results)
    return gradebook_frame(results, config)


def write_gradebook_rows(out: Path, config: AssignmentConfig, results: Iterable[SubmissionResult]) -> None:
    """The gradebook file, sorted, through the csv module (byte for byte what pandas' `to_csv` writes of the same
    table): when a batch starts, before its first result, pandas is not imported for it."""
    text = io.StringIO()
    writer = csv.DictWriter(text, gradebook_columns(config), lineterminator="\n")  # as pandas writes it
    writer.writeheader()
    writer.writerows(gradebook_row(r, config) for r in sorted(results, key=lambda r: r.submission))
    atomic_write(out / GRADEBOOK, text.getvalue())


class Gradebook:
    """`gradebook.csv` while a batch runs: written in full from the records at the start, one row appended per
    result (O(1) each), and rewritten sorted, in full, from the records by `close`. A kill at any moment leaves
    every row appended so far; the next run rewrites it from the records."""

    def __init__(self, out: Path, config: AssignmentConfig, results: Iterable[SubmissionResult]):
        self.out, self.config = out, config
        write_gradebook_rows(out, config, results)
        self.file = open(out / GRADEBOOK, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, gradebook_columns(config), lineterminator="\n")  # as pandas

    def add(self, result: SubmissionResult) -> None:
        self.writer.writerow(gradebook_row(result, self.config))
        self.file.flush()

    def close(self, results: Iterable[SubmissionResult]) -> pd.DataFrame:
        """The final gradebook, from every result recorded: sorted, one row per submission."""
        self.file.close()
        return write_gradebook(self.out, self.config, results)
