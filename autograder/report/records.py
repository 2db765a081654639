"""The grader's own record of what it graded: the one source of gradebook rows and of resumption.

An SQLite file inside `--out` that only the grader process writes, one row per submission: its
name, where it came from, the SHA-256 of the notebook that was graded, and the full result.
Kernels never see `--out`; and nothing a kernel, or anyone else, drops into `results/` becomes a
row, because rows come from here. Each result is committed as it arrives (one row, O(1); the
gradebook is written from here at the start and the end of a batch only), so a kill at any
moment loses nothing already graded; a rerun skips a submission only if this record holds it
for the same notebook bytes. Commits are durable across a crash or kill of the grader (WAL,
`synchronous=NORMAL`, no fsync per result); a power loss may roll back the last few, which a
rerun grades again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..outcomes import Outcome, QuestionScore, SubmissionResult

RECORDS = ".torchgrade-records.sqlite"
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

    def done(self, submission: str, digest: str) -> bool:
        row = self.db.execute("SELECT sha256 FROM results WHERE submission = ?", (submission,)).fetchone()
        return row is not None and row[0] == digest

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
    questions = [QuestionScore(q["id"], q["points"], q["max_points"], [Outcome(**o) for o in q["outcomes"]])
                 for q in data.pop("questions")]
    return SubmissionResult(questions=questions, **data)
