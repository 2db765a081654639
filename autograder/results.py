"""Scoring: check outcomes → per-question points → one submission's result (all data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .checks import Outcome
from .config import AssignmentConfig

STATUSES = ("ok", "timeout", "memory", "crashed", "invalid", "error")


@dataclass
class QuestionScore:
    id: str
    points: float
    max_points: float
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class SubmissionResult:
    submission: str
    status: str
    questions: list[QuestionScore]
    message: str = ""
    path: str = ""
    execution_time: float = 0.0  # the whole grading of this submission, seconds
    cell_time: float = 0.0  # the notebook's own cells, seconds
    cell_errors: list[str] = field(default_factory=list)
    device: str = "cpu"
    flags: list[dict[str, str]] = field(default_factory=list)  # integrity findings: kind, origin, detail
    memory_peak_mb: float = 0.0
    restarts: int = 0  # fresh kernels the submission needed (a kernel that died or would not stop)
    # pictures for the feedback (checks/figures.py): name, question, title, audience, png (base64), error, seconds
    figures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flag_kinds(self) -> list[str]:
        return sorted({f["kind"] for f in self.flags})

    @property
    def total(self) -> float:
        return round(sum(q.points for q in self.questions), 2)

    @property
    def max_total(self) -> float:
        return round(sum(q.max_points for q in self.questions), 2)

    @classmethod
    def ungraded(cls, submission: str, status: str, message: str, config: AssignmentConfig,
                 path: str = "") -> "SubmissionResult":
        """A row for a submission that could not be run at all: zero points, and why."""
        questions = [QuestionScore(q.id, 0.0, q.points) for q in config.questions]
        return cls(submission, status, questions, message, path)


def score(config: AssignmentConfig, outcomes: Iterable[Outcome]) -> list[QuestionScore]:
    """Each question's points: its points × the weighted mean score of its checks."""
    outcomes = list(outcomes)
    scores = []
    for q in config.questions:
        mine = [o for o in outcomes if o.question == q.id]
        weight = sum(o.weight for o in mine)
        fraction = sum(o.weight * o.score for o in mine) / weight if weight else 0.0
        scores.append(QuestionScore(q.id, round(q.points * fraction, 2), q.points, mine))
    return scores
