"""Grades for an LMS: the recorded results of `--out`, matched to a roster, in Canvas's, Moodle's or a plain CSV.

Grades come from the grader's own record (`records.py`), never from files in `--out`, with the instructor's
adjustments and the late penalty applied (`Records.results`). The roster says which student each submission
belongs to: Canvas's gradebook export and Moodle's grading worksheet as the LMS exports them, or a plain CSV
with a `submission` column (`roster.py`). Canvas needs one of `id`, `sis_user_id`, `sis_login_id`; Moodle one
of `email`, `id` or the worksheet's `Identifier` (then the worksheet is written back with its `Grade` filled in,
for Moodle's "Upload grading worksheet"); csv nothing more.

Nothing is dropped silently. A student of the roster without a graded submission is written with an empty
grade (an LMS import leaves an empty cell alone: whether a missing notebook is worth zero is the
instructor's call); a submission of the grader's record that no roster row claims is reported and written to
a side file. A submission whose grade is not final (`outcomes.py`: the grader failed on it, or a question is pending
because none of its checks could run) is written with an empty grade and reported, never as points the
student did not earn or lose.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..extensions import load
from ..outcomes import SubmissionResult
from .records import RECORDS, Records
from .roster import POINTS_POSSIBLE, Roster, Student, claim, read_roster

__all__ = ["POINTS_POSSIBLE", "Roster", "Student", "read_roster", "export_lms", "recorded_results"]


@dataclass(frozen=True)
class Row:
    """One line of an LMS file: a student, a result, or both."""

    student: Student | None
    result: SubmissionResult | None

    @property
    def submission(self) -> str:
        return self.result.submission if self.result else (self.student.submission if self.student else "")


@dataclass
class Matched:
    rows: list[Row] = field(default_factory=list)  # roster order; a student without a result has result None
    unmatched: list[SubmissionResult] = field(default_factory=list)  # results no roster row claims

    @property
    def graded(self) -> list[Row]:
        """Roster rows written with a grade."""
        return [r for r in self.rows if r.result is not None and r.result.final]

    @property
    def missing(self) -> list[Student]:
        """Students of the roster without a graded submission."""
        return [r.student for r in self.rows if r.result is None]

    @property
    def ungraded(self) -> list[SubmissionResult]:
        """Results whose grade is left empty because it is not final (`outcomes`): the grader failed on them, or
        a question is pending because none of its checks could run."""
        return [r.result for r in self.rows if r.result and not r.result.final]


@dataclass(frozen=True)
class GradeColumn:
    """The LMS's column for the assignment: its title, the LMS's id for it, its points."""

    title: str
    lms_id: str = ""
    points: float = 0.0


@dataclass(frozen=True)
class LmsFormat:
    name: str
    needs: tuple[tuple[str, ...], ...]  # roster columns: each tuple needs one of its columns
    rows: Callable[[Matched, GradeColumn, frozenset[str]], list[list[str]]]


@dataclass
class LmsReport:
    output: Path
    format: str
    matched: Matched
    side_file: Path | None = None


def recorded_results(out: Path) -> list[SubmissionResult]:
    """Every result the grader recorded in `out` (its own SQLite record, not the files next to it)."""
    if not (Path(out) / RECORDS).is_file():
        raise ConfigError(f"no grades recorded here (no {RECORDS}); grade with `torchgrade grade ... --out` first",
                          out)
    records = Records(Path(out))
    try:
        return records.results()
    finally:
        records.close()


def match(roster: Roster, results: list[SubmissionResult]) -> Matched:
    roster = claim(roster, [r.submission for r in results])
    by_name = {r.submission: r for r in results}
    matched = Matched()
    for student in roster.students:
        matched.rows.append(Row(student, by_name.get(student.submission) if student.submission else None))
    claimed = {s.submission for s in roster.students}
    matched.unmatched = [r for r in results if r.submission not in claimed]
    return matched


def grade_text(result: SubmissionResult | None) -> str:
    """The grade an LMS imports: the total when it is final (`outcomes.SubmissionResult.grade`), else empty (no
    submission, the grader failed on it, or a question is pending)."""
    grade = result.grade if result is not None else None
    return "" if grade is None else number(grade)


def number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def canvas_rows(matched: Matched, column: GradeColumn, roster_columns: frozenset[str]) -> list[list[str]]:
    title = f"{column.title} ({column.lms_id})" if column.lms_id else column.title
    rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", title],
            [POINTS_POSSIBLE, "", "", "", "", number(column.points)]]
    for row in matched.rows:
        s = row.student
        rows.append([s.name, s.id, s.sis_user_id, s.sis_login_id, s.section, grade_text(row.result)])
    return rows


def moodle_rows(matched: Matched, column: GradeColumn, roster_columns: frozenset[str]) -> list[list[str]]:
    if "participant" in roster_columns:  # the grading worksheet, written back with its grades
        rows = [["Identifier", "Full name", "Email address", "Grade", "Maximum Grade"]]
        for row in matched.rows:
            s = row.student
            rows.append([s.participant, s.name, s.email, grade_text(row.result), number(column.points)])
        return rows
    identity = [(key, header) for key, header in (("email", "Email address"), ("id", "ID number"))
                if key in roster_columns]
    rows = [[header for _, header in identity] + [column.title]]
    for row in matched.rows:
        rows.append([getattr(row.student, key) for key, _ in identity] + [grade_text(row.result)])
    return rows


STUDENT_COLUMNS = ("name", "id", "sis_user_id", "sis_login_id", "section", "email")


def csv_rows(matched: Matched, column: GradeColumn, roster_columns: frozenset[str]) -> list[list[str]]:
    student_columns = [c for c in STUDENT_COLUMNS if c in roster_columns]
    rows = [["submission", *student_columns, "total", "max_total", "status", "flags"]]
    for row in [*matched.rows, *(Row(None, r) for r in matched.unmatched)]:
        s, r = row.student or Student(), row.result
        status = r.status if r else "missing"
        rows.append([row.submission, *(getattr(s, c) for c in student_columns), grade_text(r),
                     number(r.max_total if r else column.points), status, ";".join(r.flag_kinds) if r else ""])
    return rows


CANVAS = LmsFormat("canvas", (("id", "sis_user_id", "sis_login_id"),), canvas_rows)
MOODLE = LmsFormat("moodle", (("email", "id", "participant"),), moodle_rows)
CSV = LmsFormat("csv", (), csv_rows)  # the formats are registered in `extensions.py` ("lms")


def get_format(name: str) -> LmsFormat:
    return load("lms", name)


def check_roster(roster: Roster, fmt: LmsFormat) -> None:
    for choices in fmt.needs:
        if not roster.columns & set(choices):
            raise ConfigError(f"the {fmt.name} format needs a roster column {' or '.join(f'`{c}`' for c in choices)} "
                              "to identify students", roster.path)


def write_csv(path: Path, rows: list[list[str]]) -> None:
    from .writers import atomic_write

    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    atomic_write(path, text.getvalue())


def side_file(output: Path) -> Path:
    return output.with_name(f"{output.stem}.unmatched.csv")


def export_lms(out: Path, roster_path: Path, format_name: str, output: Path | None = None, title: str | None = None,
               lms_id: str = "") -> LmsReport:
    """Write `out`'s recorded grades for an LMS (default file: `out/gradebook-<format>.csv`); submissions no roster
    row claims go to `<output>.unmatched.csv`, in the csv format."""
    fmt = get_format(format_name)
    roster = read_roster(roster_path)
    check_roster(roster, fmt)
    results = recorded_results(out)
    matched = match(roster, results)
    points = max((r.max_total for r in results), default=0.0)
    column = GradeColumn(title or Path(out).resolve().name, lms_id, points)
    output = Path(output) if output else Path(out) / f"gradebook-{fmt.name}.csv"
    write_csv(output, fmt.rows(matched, column, roster.columns))
    report = LmsReport(output, fmt.name, matched)
    extra = side_file(output)
    if matched.unmatched:
        write_csv(extra, csv_rows(Matched(unmatched=matched.unmatched), column, frozenset()))
        report.side_file = extra
    elif extra.exists():
        extra.unlink()  # a previous run's list, no longer true
    return report
