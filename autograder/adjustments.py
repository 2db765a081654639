"""What an instructor changes after grading, and what lateness costs: the arithmetic, decided once, without torch.

The grader's records (`report/records.py`) hold the instructor's adjustments and each submission's times; every
writer reads results through `adjust`, so the gradebook, the results JSON, the LMS files, the report and the
feedback show the same adjusted total by construction.

- An **override** sets a question's points (a manual question graded from a sheet, a regrade by hand): the
  question is no longer pending. The latest override of a question wins.
- A **bonus** (no question) adds points to the total (negative points take some away).
- **Lateness** (`config.Late`): a submission later than its deadline (the assignment's, plus the student's
  extension) by more than `grace_minutes` loses `penalty_per_day` (or `penalty_per_hour`) of the assignment's
  points per started day (hour) after the deadline, at most `cap` of them: fractions of the points, as Canvas's
  late policy deducts a percentage of the points possible. The total never goes below zero.
- Where only Canvas's `LATE_` marker says a submission was late (no time is known), it is taken as one period
  late (the least a late submission loses) and marked `unknown` for review; with an extension, the marker (which
  Canvas sets against the student's own due date) cannot be weighed against it: no penalty, marked for review.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Iterable

from .outcomes import SubmissionResult


@dataclass(frozen=True)
class Adjustment:
    """One change an instructor made: an override (`question` set) or a bonus (`question` empty)."""

    id: int
    submission: str
    question: str
    points: float
    reason: str
    who: str
    at: str  # ISO time, UTC

    @property
    def kind(self) -> str:
        return "override" if self.question else "bonus"


@dataclass(frozen=True)
class Timing:
    """When a submission came in, as far as anything says: an ISO time, or only Canvas's `LATE_` marker."""

    submitted_at: str = ""
    late_marker: bool = False
    extension_hours: float = 0.0


def parse_time(text: str) -> datetime:
    """An ISO time with a zone (`Z` allowed); a time without one is an error, never guessed."""
    when = datetime.fromisoformat(text.strip().replace(" UTC", "+00:00").replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return when


def lateness(policy: Any, timing: Timing, max_total: float) -> dict[str, Any]:
    """The lateness of one submission under `policy` (`config.Late`, or None: no deadline, {}): its effective
    deadline, when it came in, hours late (None: unknown), the periods charged and the penalty in points."""
    if policy is None:
        return {}
    deadline = parse_time(policy.deadline) + timedelta(hours=timing.extension_hours)
    per_hour = bool(policy.penalty_per_hour)
    unit, rate = (3600.0, policy.penalty_per_hour) if per_hour else (86400.0, policy.penalty_per_day)
    late = {"deadline": deadline.isoformat(), "submitted_at": timing.submitted_at, "extension_hours":
            timing.extension_hours, "hours_late": 0.0, "periods": 0, "penalty": 0.0, "unknown": False}
    if timing.submitted_at:
        seconds = (parse_time(timing.submitted_at) - deadline).total_seconds()
        if seconds > policy.grace_minutes * 60:
            late["hours_late"] = round(seconds / 3600, 2)
            late["periods"] = math.ceil(seconds / unit)
    elif timing.late_marker:
        late.update(hours_late=None, unknown=True, periods=0 if timing.extension_hours else 1)
    penalty = min(late["periods"] * rate, policy.cap) * max_total
    late["penalty"] = round(penalty, 2)
    return late


def adjust(result: SubmissionResult, adjustments: Iterable[Adjustment] = (), late: dict[str, Any] | None = None
           ) -> SubmissionResult:
    """The result as every writer shows it: overrides set their question's points (the latest wins), bonuses and
    the late penalty change the total (`SubmissionResult.total`), the grader's own total kept as `raw_total`."""
    adjustments = [a for a in adjustments if a.submission == result.submission]
    if not adjustments and not late:
        return result
    overrides = {a.question: a for a in sorted(adjustments, key=lambda a: a.id) if a.question}
    questions, applied = [], []
    for q in result.questions:
        a = overrides.get(q.id)
        questions.append(replace(q, points=a.points, overridden=True) if a else q)
    for a in sorted(adjustments, key=lambda a: a.id):
        was = next((q.points_text for q in result.questions if q.id == a.question), "") if a.question else ""
        applied.append({**asdict(a), "kind": a.kind, "was": was,
                        "applied": not a.question or overrides.get(a.question) is a})
    return replace(result, questions=questions, adjustments=applied, lateness=dict(late or {}),
                   graded_total=result.raw_total)


def adjustment_lines(result: SubmissionResult) -> list[str]:
    """The adjustments and the lateness of a result, in words (feedback, both audiences)."""
    lines = []
    for a in result.adjustments:
        if not a.get("applied", True):
            continue
        if a["question"]:
            lines.append(f"{a['question']} set to {amount(a['points'], 'point')} by your instructor: {a['reason']}")
        else:
            lines.append(f"{a['points']:+g} {'point' if abs(a['points']) == 1 else 'points'} from your instructor: "
                         f"{a['reason']}")
    late = result.lateness
    if late.get("unknown"):
        penalty = f"{amount(late['penalty'], 'point')} deducted" if late["penalty"] else "no penalty applied yet"
        lines.append(f"marked late by the LMS (time unknown): {penalty}")
    elif late.get("periods"):
        lines.append(f"submitted {amount(late['hours_late'], 'hour')} after the deadline ({late['deadline']}): "
                     f"{amount(late['penalty'], 'point')} deducted")
    return lines


def amount(value: float, unit: str) -> str:
    """`1 point`, `2.5 points`, `0 points`."""
    return f"{value:g} {unit}{'' if abs(value) == 1 else 's'}"
