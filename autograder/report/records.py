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
misread. Commits are durable across a crash or kill of the grader (WAL,
`synchronous=NORMAL`, no fsync per result); a power loss may roll back the last few, which a
rerun grades again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..outcomes import Outcome, QuestionScore, SubmissionResult, done

RECORDS = ".torchgrade-records.sqlite"
SCHEMA_VERSION = 2  # 1: the first (unversioned) records; 2: outcome and result phases, isolation
SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    submission TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL, graded_at REAL NOT NULL,
    result TEXT NOT NULL)"""


def notebook_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class Records:
    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / RECORDS
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)
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

    def results(self) -> list[SubmissionResult]:
        rows = self.db.execute("SELECT result FROM results ORDER BY submission").fetchall()
        return [from_data(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        self.db.close()


def to_data(result: SubmissionResult) -> dict[str, Any]:
    return asdict(result)


def from_data(data: dict[str, Any]) -> SubmissionResult:
    """A recorded result, of this schema or an older one: fields it lacks take their defaults, fields this version
    does not know are left out."""
    questions = [QuestionScore(q["id"], q["points"], q["max_points"], [Outcome(**known(Outcome, o))
                                                                        for o in q.get("outcomes", [])])
                 for q in data.pop("questions")]
    return SubmissionResult(questions=questions, **known(SubmissionResult, data))


def known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
