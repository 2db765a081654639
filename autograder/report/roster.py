"""Rosters as LMSs export them, and which submission is whose.

Three shapes are read, told apart by their header (names matched ignoring case and spaces, so Canvas's
`SIS User ID` is `sis_user_id`):

- **Canvas's gradebook export** (`Student, ID, SIS User ID, SIS Login ID, Section, <assignments...>`): its
  `Points Possible` row (and the `Muted`/`Manual Posting` rows of some exports) and Canvas's `Test Student` are
  recognised and skipped. A student's submission is the one whose name ends in their Canvas user id, as `grade`
  names Canvas's bulk download (`<name>_<userid>`, `grading/submissions.py`).
- **Moodle's grading worksheet** (`Identifier, Full name, Email address, Status, Grade, ...`), its `Identifier`
  being `Participant 123456`: a student's submission is the one whose name holds that participant number, as
  Moodle's bulk download names its folders (`Full Name_123456_assignsubmission_file_`).
- **A plain CSV** with a `submission` column (the name `grade` gave it; empty for a student without one), and any
  of `name` (or `student`), `id`, `sis_user_id`, `sis_login_id`, `section`, `email`.

Any of them may carry an `extension` column: the student's extension in hours (`adjustments.py`). Unknown
columns are ignored; a submission claimed by two rows is an error.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError

ROSTER_COLUMNS = ("submission", "name", "id", "sis_user_id", "sis_login_id", "section", "email", "participant",
                  "extension")
ALIASES = {"student": "name", "email_address": "email", "e_mail": "email", "e_mail_address": "email", "id_number": "id",
           "user_id": "id", "full_name": "name", "identifier": "participant", "extension_hours": "extension"}
POINTS_POSSIBLE = "    Points Possible"  # as Canvas writes it in its own exports (the importer skips this row)
CANVAS_SPECIAL_ROWS = ("Points Possible", "Muted", "Manual Posting")  # Canvas's rows that are not students
TEST_STUDENTS = ("Test Student", "Student, Test")  # Canvas's student view, as exports name it
CANVAS_ID = re.compile(r".*_(?P<id>\d+)")  # `grade`'s names of Canvas downloads: <name>_<userid>
MOODLE_ID = re.compile(r".*_(?P<id>\d+)_assign(?:submission|feedback)_\w*")  # Moodle's download folders
PARTICIPANT = re.compile(r"(?:participant\s*)?(?P<id>\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Student:
    submission: str = ""
    name: str = ""
    id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""
    participant: str = ""  # Moodle's `Identifier`, as written (`Participant 123456`)
    extension: str = ""  # hours

    @property
    def participant_number(self) -> str:
        match = PARTICIPANT.fullmatch(self.participant.strip())
        return match.group("id") if match else ""

    @property
    def extension_hours(self) -> float:
        return float(self.extension) if self.extension else 0.0


@dataclass(frozen=True)
class Roster:
    path: Path
    columns: frozenset[str]
    students: tuple[Student, ...]
    shape: str = "csv"  # canvas (matched by Canvas user id), moodle (by participant number), csv (by submission)


def column_key(header: str) -> str:
    key = "_".join(header.strip().lower().replace("-", " ").split())
    return ALIASES.get(key, key)


def shape_of(header: list[str]) -> str:
    keys = [column_key(h) for h in header]
    if "submission" in keys:
        return "csv"
    if "participant" in keys:
        return "moodle"
    if header[0].strip() == "Student" and "id" in keys:  # Canvas's export starts so
        return "canvas"
    return ""


def read_roster(path: Path) -> Roster:
    """The roster: a student per row, in whichever shape it comes (see the module's docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the roster: {exc}", path) from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ConfigError("the roster is empty (it needs a header with a `submission` column)", path)
    keys = [column_key(h) for h in header]
    shape = shape_of(header)
    if not shape:
        raise ConfigError(f"the roster has no `submission` column (its columns: {', '.join(header)}), and is neither "
                          "Canvas's gradebook export (Student, ID, ...) nor Moodle's grading worksheet "
                          f"(Identifier, ...); columns torchgrade reads: {', '.join(ROSTER_COLUMNS)}", path)
    known = [(i, k) for i, k in enumerate(keys) if k in ROSTER_COLUMNS]
    students = []
    for line, values in enumerate(reader, 2):
        fields = {k: values[i].strip() for i, k in known if i < len(values)}
        if not any(fields.values()) or not_a_student(fields, shape):
            continue
        student = Student(**fields)
        try:
            student.extension_hours
        except ValueError:
            raise ConfigError(f"line {line}: extension {student.extension!r} is not a number of hours", path) from None
        students.append(student)
    claimed: dict[str, int] = {}
    for s in students:
        if s.submission:
            claimed[s.submission] = claimed.get(s.submission, 0) + 1
    twice = sorted(name for name, n in claimed.items() if n > 1)
    if twice:
        raise ConfigError(f"several roster rows claim the same submission: {', '.join(twice)}", path)
    return Roster(Path(path), frozenset(k for _, k in known), tuple(students), shape)


def not_a_student(fields: dict[str, str], shape: str) -> bool:
    """Canvas's `Points Possible` (and similar) rows and its test student."""
    if shape != "canvas":
        return False
    name = fields.get("name", "")
    return name.strip() in CANVAS_SPECIAL_ROWS or name.strip() in TEST_STUDENTS or not (
        fields.get("id") or fields.get("sis_user_id") or fields.get("sis_login_id"))


def lms_id(submission: str, shape: str) -> str:
    """The LMS's id a submission's name carries: the Canvas user id, or the Moodle participant number."""
    pattern = CANVAS_ID if shape == "canvas" else MOODLE_ID if shape == "moodle" else None
    match = pattern.fullmatch(submission) if pattern else None
    return match.group("id") if match else ""


def claim(roster: Roster, submissions: Iterable[str]) -> Roster:
    """The roster with each student's `submission` filled in from the names of `submissions` (Canvas: by user id,
    Moodle: by participant number); a plain roster says it already. Two submissions of one student are an error."""
    if roster.shape == "csv":
        return roster
    by_id: dict[str, list[str]] = {}
    for name in submissions:
        ident = lms_id(name, roster.shape)
        if ident:
            by_id.setdefault(ident, []).append(name)
    twice = {i: names for i, names in by_id.items() if len(names) > 1}
    if twice:
        raise ConfigError("several submissions carry the same LMS id: " + "; ".join(
            f"{i}: {', '.join(sorted(n))}" for i, n in sorted(twice.items())), roster.path)
    students = []
    for s in roster.students:
        ident = s.id if roster.shape == "canvas" else s.participant_number
        students.append(replace(s, submission=by_id.get(ident, [""])[0]) if ident else s)
    return replace(roster, students=tuple(students), columns=roster.columns | {"submission"})
