"""A batch's results, kept as they arrive: the grader's records, the gradebook and each submission's files.

The `Outbox` of `grading/batch.py`. Each result is committed to the records first (`records.py`, one SQLite
row, O(1)), then its gradebook row is appended and its files written; the gradebook is written in full from
the records once at the start and once at the end (also after an interrupt), so the cost of a batch is linear
in its size. What a resumed batch still has to grade is the records' call (`outcomes.done`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import AssignmentConfig
from ..outcomes import SubmissionResult
from .gradebook import Gradebook
from .records import Records, notebook_digest
from .writers import write_result

if TYPE_CHECKING:
    import pandas as pd

    from ..grading.submissions import Submission


class Outbox:
    def __init__(self, out: Path, config: AssignmentConfig, fingerprint: str = ""):
        self.out, self.config = out, config
        self.fingerprint = fingerprint  # the assignment's (`Assignment.fingerprint`): recorded with each notebook's
        self.records: Records | None = None  # opened by `todo`: a batch refused before it starts writes nothing
        self.digests: dict[str, str] = {}
        self.gradebook: Gradebook | None = None

    def todo(self, submissions: "list[Submission]", force: bool) -> "list[Submission]":
        self.records = Records(self.out)
        self.digests = {s.name: notebook_digest(s.path, self.fingerprint) for s in submissions}
        todo = [s for s in submissions if force or not self.records.done(s.name, self.digests[s.name])]
        regraded = {s.name for s in todo}
        self.gradebook = Gradebook(self.out, self.config,
                                   [r for r in self.records.results() if r.submission not in regraded])
        return todo

    def add(self, result: SubmissionResult) -> None:
        self.records.add(result, self.digests.get(result.submission, ""))
        result = self.records.adjusted(result)  # what every file shows: the instructor's adjustments kept
        if self.gradebook is not None:
            self.gradebook.add(result)
        write_result(self.out, result, self.config)

    def close(self) -> pd.DataFrame:
        """One pass over the records: the final gradebook."""
        if self.records is None or self.gradebook is None:
            import pandas as pd

            return pd.DataFrame()
        try:
            return self.gradebook.close(self.records.results())
        finally:
            self.records.close()
