"""The grading policy, decided once, under everything and without torch.

Every writer (gradebook CSV, results JSON, LMS files, feedback, the instructor report, the terminal and the
records) reads its numbers and words here, so that they agree by construction (pytest decides a `TestReport`
once and every reporter renders it):

- what a check's outcome is worth: `passed` 1, `partial` its fraction, `failed` 0, and `error` (the grader
  could not run the check) **nothing either way** when the grader's own check failed: it is left out of its
  question's mean until an instructor has looked; an error of the probe in the kernel (which a notebook can
  cause) counts as zero until then (`counted`);
- a question none of whose checks could run is `pending`: it has no points yet, and its cell is empty;
- a total is `final` (the grade an LMS gets) only when every check ran: otherwise it is provisional, shown
  as such everywhere, and an instructor looks before it is exported;
- a question of `kind = "manual"` is pending until a person grades it (`needs_grading`); points an instructor
  sets (an override) are never pending, and bonuses and the late penalty change the total, the grader's own
  kept as `raw_total`: the arithmetic is `adjustments.py`, applied from the records before any writer reads;
- which submission statuses are ungraded (`error`: the grader failed; an LMS gets an empty grade, not a zero)
  and which results need an instructor's review (`needs_review`);
- what counts as done for a resumed batch (`done`): the same notebook, graded to the end by the grader;
- the phase a failure happened in (`PHASES`: read, execute, probe, check, render), as pytest's `CallInfo` says
  setup, call or teardown;
- the time budget of one submission, whose clock starts when its kernel is attached (`Budget`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

CHECK_STATUSES = ("passed", "partial", "failed", "error")
STATUSES = ("ok", "timeout", "memory", "crashed", "invalid", "error")  # a submission's, in the gradebook
UNGRADED = ("error",)  # statuses whose zero points are not the student's: the grader failed on it
PHASES = ("read", "execute", "probe", "check", "render")


@dataclass(frozen=True)
class Outcome:
    """The result of one check on one submission: data, whatever happened.

    `status`: passed, partial, failed (the student's answer), or error (the grader could not run the check,
    never the student's fault; `detail` holds the traceback, for the instructor only). `phase` says where an
    `error` happened: `probe` (asking the kernel failed on the grader's side), `check` (the check itself), `data`
    (the data the check reads is not there: `checks.data.MissingData`, in a self-check the `data/` folder handed
    out with the notebook is not beside it; its message says so, and quotes no hidden input)."""

    check: str
    question: str
    public: bool
    weight: float
    score: float
    message: str
    hint: str = ""
    seconds: float = 0.0
    status: str = "passed"
    detail: str = ""
    doc: str = ""
    phase: str = "check"

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def counted(self) -> bool:
        """Whether this outcome counts towards its question's points. A fault of the grader's own code (phase
        `check`) does not, either way. A probe that failed in the kernel (phase `probe`) counts as zero until an
        instructor has looked: a kernel can make its probe fail on purpose, and Gradescope takes the score as it
        is, so leaving such a check out would let a notebook drop the checks it fails."""
        return self.status != "error" or self.phase == "probe"


def status_of(score: float) -> str:
    return "passed" if score >= 1 else ("partial" if score > 0 else "failed")


@dataclass
class QuestionScore:
    id: str
    points: float  # 0.0 while pending
    max_points: float
    outcomes: list[Outcome] = field(default_factory=list)
    manual: bool = False  # graded by a person (`kind = "manual"`): pending until an instructor gives its points
    overridden: bool = False  # its points were set by an instructor (`adjustments.py`): never pending

    @property
    def pending(self) -> bool:
        """Checks were run and none of them could be, or a person has still to grade it (a manual question): the
        question has no points until someone looks. Points an instructor set are never pending."""
        if self.overridden:
            return False
        return self.manual or (bool(self.outcomes) and not any(o.counted for o in self.outcomes))

    @property
    def points_text(self) -> str:
        return "pending" if self.pending else f"{self.points:g}"


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
    phase: str = ""  # where a stop or a grader failure happened (read, execute, probe, check, render); "" if none
    isolation: str = ""  # the isolation the kernel ran under (bwrap, user, none)
    # set by `adjustments.adjust` from the grader's records, never by grading: the instructor's adjustments
    # (id, question ("" for a bonus), points, reason, who, at, was), the lateness (`adjustments.Lateness` as a
    # dict) and the total the grader gave before either (None: nothing was adjusted)
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    lateness: dict[str, Any] = field(default_factory=dict)
    graded_total: float | None = None

    @property
    def flag_kinds(self) -> list[str]:
        return sorted({f["kind"] for f in self.flags})

    @property
    def total(self) -> float:
        """The questions' points, plus bonuses, less the late penalty (`adjustments.py`), never below zero when
        adjusted."""
        points = sum(q.points for q in self.questions if not q.pending)
        if not self.adjustments and not self.lateness:
            return round(points, 2)
        bonus = sum(a["points"] for a in self.adjustments if not a.get("question"))
        return round(max(0.0, points + bonus - self.lateness.get("penalty", 0.0)), 2)

    @property
    def raw_total(self) -> float:
        """The total the grader gave, before any adjustment or late penalty."""
        return self.total if self.graded_total is None else self.graded_total

    @property
    def max_total(self) -> float:
        return round(sum(q.max_points for q in self.questions), 2)

    @property
    def max_automatic(self) -> float:
        """The points the checks give: all but the written answers', which a person grades."""
        return round(sum(q.max_points for q in self.questions if not q.manual), 2)

    @property
    def ungraded(self) -> bool:
        """The grader failed on this submission: its zero is not a grade."""
        return self.status in UNGRADED

    @property
    def check_errors(self) -> list[Outcome]:
        return [o for q in self.questions for o in q.outcomes if o.status == "error"]

    @property
    def final(self) -> bool:
        """The total is the grade: graded, and every check ran. A check the grader could not run leaves its
        question's points provisional until an instructor has looked (a kernel can make the probe fail on
        purpose: that must not buy a check out of the grade unseen)."""
        return not self.ungraded and not self.unresolved_errors and not self.needs_grading

    @property
    def unresolved_errors(self) -> list[Outcome]:
        """Checks the grader could not run, in questions whose points no instructor has set (`adjustments.py`: an
        override is the instructor's look)."""
        return [o for q in self.questions if not q.overridden for o in q.outcomes if o.status == "error"]

    @property
    def needs_grading(self) -> list[str]:
        """Manual questions a person has not graded yet: the total is not the grade until they have."""
        return [q.id for q in self.questions if q.manual and q.pending]

    @property
    def needs_review(self) -> bool:
        """An instructor should look: the grader failed, a check could not run, or an integrity finding."""
        return self.ungraded or bool(self.check_errors) or bool(self.flags)

    @property
    def grade(self) -> float | None:
        """What an LMS or Gradescope should record: the total when it is final, else nothing yet."""
        return self.total if self.final else None

    @classmethod
    def ungraded_row(cls, submission: str, status: str, message: str, questions: Iterable[Any], path: str = "",
                     phase: str = "") -> "SubmissionResult":
        """A row for a submission that could not be run at all: zero points, and why. `questions` are the
        configuration's (`.id`, `.points`)."""
        scores = [QuestionScore(q.id, 0.0, q.points, manual=getattr(q, "kind", "auto") == "manual") for q in questions]
        return cls(submission, status, scores, message, path, phase=phase)


def score(questions: Iterable[Any], outcomes: Iterable[Outcome]) -> list[QuestionScore]:
    """Each question's points: its points × the weighted mean score of its counted checks (`error`s left out)."""
    outcomes = list(outcomes)
    scores = []
    for q in questions:
        mine = [o for o in outcomes if o.question == q.id]
        counted = [o for o in mine if o.counted]
        weight = sum(o.weight for o in counted)
        fraction = sum(o.weight * o.score for o in counted) / weight if weight else 0.0
        scores.append(QuestionScore(q.id, round(q.points * fraction, 2), q.points, mine,
                                    manual=getattr(q, "kind", "auto") == "manual"))
    return scores


def shares(points: float, weights: list[float], places: int = 2) -> list[float]:
    """`points` split in proportion to `weights`, rounded to `places` so that the shares add up to `points`
    exactly (largest remainder): a question's Gradescope tests sum to its points, never to 9.9999 of 10."""
    total = sum(weights)
    if not weights or total <= 0:
        return [0.0] * len(weights)
    unit = 10 ** places
    exact = [points * unit * w / total for w in weights]
    floors = [int(e) for e in exact]
    left = round(points * unit) - sum(floors)
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - floors[i], reverse=True)[:max(0, left)]:
        floors[i] += 1
    return [f / unit for f in floors]


def done(result: SubmissionResult | None, digest: str, recorded_digest: str) -> bool:
    """A resumed batch skips a submission only if the grader graded this very notebook to the end: not after a
    grader failure (`error`) or a check that could not run, which are the grader's to do again."""
    return (result is not None and recorded_digest == digest and not result.ungraded
            and not result.check_errors)


@dataclass
class Budget:
    """The seconds one submission may use in all: cells, replays, probes and figures.

    The clock starts when the submission's kernel is attached (`start`), not when its sandbox was prepared:
    a sandbox prepared ahead, while the previous submission was still graded, costs this one nothing."""

    seconds: float
    started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def used(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    def left(self) -> float:
        return max(0.0, self.seconds - self.used())

    def limit(self, seconds: float) -> float:
        return min(seconds, self.left())

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside is not counted (what the grader does for itself, e.g. feedback figures)."""
        began = time.monotonic()
        try:
            yield
        finally:
            if self.started is not None:
                self.started += time.monotonic() - began
