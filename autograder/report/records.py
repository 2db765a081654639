"""The grader's own record of what it graded: the one source of gradebook rows and of resumption.

An SQLite file inside `--out` that only the grader process writes, one row per submission: its
name, where it came from, the SHA-256 of the notebook that was graded, and the full result.
Kernels never see `--out`; and nothing a kernel, or anyone else, drops into `results/` becomes a
row, because rows come from here. Each result is committed as it arrives (one row, O(1); the
gradebook is written from here at the start and the end of a batch only), so a kill at any
moment loses nothing already graded; a rerun skips a submission only if this record holds it
for the same notebook bytes, graded to the end by the grader (`outcomes.done`: not after a grader failure
or a check that could not run). The file carries its schema version (`PRAGMA user_version`): an older
record is read (fields it lacks take their defaults), a newer one is refused with a clear error rather than
misread. Beside the results it keeps what an instructor decided after grading, which a regrade keeps: adjustments
(overrides and bonuses, with who and when, undone but never deleted), each submission's times and extension, and
settings (the late policy of the last batch, anonymity and its key, the rubrics of manual questions); `results()`
gives every writer the results with all of it applied (`adjustments.adjust`). Commits are durable across a
crash or kill of the grader (WAL, `synchronous=NORMAL`, no fsync per result); a power loss may roll back the
last few, which a rerun grades again.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..adjustments import Adjustment, Timing, adjust, lateness
from ..config import Late
from ..errors import ConfigError
from ..outcomes import Outcome, QuestionScore, SubmissionResult, done

RECORDS = ".torchgrade-records.sqlite"
SCHEMA_VERSION = 3  # 1: the first (unversioned) records; 2: outcome and result phases, isolation; 3: adjustments,
# timing, settings
SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    submission TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL, graded_at REAL NOT NULL,
    result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS adjustments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, submission TEXT NOT NULL, question TEXT NOT NULL, points REAL NOT NULL,
    reason TEXT NOT NULL, who TEXT NOT NULL, at TEXT NOT NULL, undone_by TEXT NOT NULL DEFAULT '',
    undone_at TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS timing (
    submission TEXT PRIMARY KEY, submitted_at TEXT NOT NULL DEFAULT '', late_marker INTEGER NOT NULL DEFAULT 0,
    extension_hours REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)"""


def notebook_digest(path: Path, assignment: str = "") -> str:
    """What a recorded result was graded from: the notebook's bytes, under the assignment's fingerprint (a rerun
    skips a submission only when both are unchanged)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return hashlib.sha256(f"{assignment}\0".encode() + data).hexdigest() if assignment else \
        hashlib.sha256(data).hexdigest()


class Records:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / RECORDS
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.db.close()
            raise ConfigError(f"these records were written by a newer torchgrade (schema {version}; this one reads "
                              f"up to {SCHEMA_VERSION}): upgrade torchgrade, or grade into another --out", self.path)
        if version < SCHEMA_VERSION:  # older rows are read as they are (missing fields take their defaults)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def done(self, submission: str, digest: str) -> bool:
        """Whether a rerun may skip this submission: the policy's `done` on what is recorded."""
        row = self.db.execute("SELECT sha256, result FROM results WHERE submission = ?", (submission,)).fetchone()
        return row is not None and done(from_data(json.loads(row[1])), digest, row[0])

    def add(self, result: SubmissionResult, digest: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
                        (result.submission, result.path, digest, time.time(), json.dumps(to_data(result))))

    def results(self, adjusted: bool = True) -> list[SubmissionResult]:
        """Every recorded result, with the instructor's adjustments and the late policy applied (`adjusted`), as
        every writer shows them; the grader's own with `adjusted=False`."""
        rows = self.db.execute("SELECT result FROM results ORDER BY submission").fetchall()
        results = [from_data(json.loads(r[0])) for r in rows]
        if not adjusted:
            return results
        policy, by_submission = self.setting("late"), {}  # one query per table, not per result
        for a in self.adjustments():
            by_submission.setdefault(a.submission, []).append(a)
        timings = {row[0]: Timing(row[1], bool(row[2]), row[3]) for row in self.db.execute(
            "SELECT submission, submitted_at, late_marker, extension_hours FROM timing")} if policy else {}
        return [adjusted_result(r, by_submission.get(r.submission, []), policy, timings.get(r.submission, Timing()))
                for r in results]

    def adjusted(self, result: SubmissionResult) -> SubmissionResult:
        """One result as every writer shows it: `adjustments.adjust` with what these records hold for it."""
        return adjusted_result(result, self.adjustments(result.submission), self.setting("late"),
                        self.timing(result.submission))

    def add_adjustment(self, submission: str, question: str, points: float, reason: str,
                       who: str | None = None) -> Adjustment:
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        who = who or current_user()
        cursor = self.db.execute("INSERT INTO adjustments (submission, question, points, reason, who, at) VALUES "
                                 "(?, ?, ?, ?, ?, ?)", (submission, question, float(points), reason, who, at))
        return Adjustment(cursor.lastrowid, submission, question, float(points), reason, who, at)

    def undo_adjustment(self, ident: int, who: str | None = None) -> Adjustment:
        """Undo an adjustment (it stays in the records, marked undone, by whom and when)."""
        found = [a for a in self.adjustments() if a.id == ident]
        if not found:
            raise ConfigError(f"no adjustment {ident} in force here (see `torchgrade adjust OUT --list`)", self.path)
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.db.execute("UPDATE adjustments SET undone_by = ?, undone_at = ? WHERE id = ?",
                        (who or current_user(), at, ident))
        return found[0]

    def adjustments(self, submission: str | None = None) -> list[Adjustment]:
        """The adjustments in force (not undone), oldest first; of one submission, or all."""
        query = "SELECT id, submission, question, points, reason, who, at FROM adjustments WHERE undone_at = ''"
        rows = self.db.execute(query + (" AND submission = ?" if submission is not None else "") + " ORDER BY id",
                               (submission,) if submission is not None else ()).fetchall()
        return [Adjustment(*row) for row in rows]

    def set_timing(self, submission: str, submitted_at: str | None = None, late_marker: bool | None = None,
                   extension_hours: float | None = None) -> None:
        """Record what is known of a submission's times; a value not given is left as it was."""
        self.db.execute("INSERT OR IGNORE INTO timing (submission) VALUES (?)", (submission,))
        for column, value in (("submitted_at", submitted_at), ("late_marker", late_marker),
                              ("extension_hours", extension_hours)):
            if value is not None:
                self.db.execute(f"UPDATE timing SET {column} = ? WHERE submission = ?", (value, submission))

    def timing(self, submission: str) -> Timing:
        row = self.db.execute("SELECT submitted_at, late_marker, extension_hours FROM timing WHERE submission = ?",
                              (submission,)).fetchone()
        return Timing(row[0], bool(row[1]), row[2]) if row else Timing()

    def set_setting(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))

    def setting(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def close(self) -> None:
        self.db.close()


def to_data(result: SubmissionResult) -> dict[str, Any]:
    return asdict(result)


def from_data(data: dict[str, Any]) -> SubmissionResult:
    """A recorded result, of this schema or an older one: fields it lacks take their defaults, fields this version
    does not know are left out."""
    questions = [QuestionScore(q["id"], q["points"], q["max_points"], [Outcome(**known(Outcome, o))
                                                                        for o in q.get("outcomes", [])],
                               manual=q.get("manual", False))
                 for q in data.pop("questions")]
    return SubmissionResult(questions=questions, **known(SubmissionResult, data))


def adjusted_result(result: SubmissionResult, adjustments: list[Adjustment], policy: dict | None,
                    timing: Timing) -> SubmissionResult:
    """`adjustments.adjust` with the late policy as recorded (a dict of `config.Late`'s fields, or None)."""
    late = lateness(Late(**policy), timing, result.max_total) if policy else None
    return adjust(result, adjustments, late)


def current_user() -> str:
    """Who is making a change: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
