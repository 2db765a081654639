"""`torchgrade assign`: build the student and autograder bundles from one source, and prove them.

Proof: one run of the solution (record the public checks' expected values from the reference, grade with
every check, then replay the public checks from the recorded file) and one run of the blank notebook. The
solution must score full marks, the blank zero, and the recorded public checks must pass on the solution;
otherwise `assign` fails loudly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..build.assignment import BUNDLE_SOLUTION, BUNDLE_STUDENT_FILES, EXPECTED_NAME, STUDENT_META, load_assignment, \
    load_student_checks
from ..build.bundles import AUTOGRADER_DIR, BLANK_NAME, STUDENT_DIR, build_bundles
from ..build.recorded import Recording, Replay
from ..checks import Context, run_checks
from ..config import GradeSettings
from ..errors import BuildError
from ..kernel.isolation import trusted_isolation
from ..kernel.probe import Student
from ..outcomes import Outcome, SubmissionResult
from ..render import outcome_lines
from .pipeline import grade_submission


@dataclass(frozen=True)
class BuildReport:
    name: str
    out: Path
    solution: SubmissionResult
    blank: SubmissionResult
    self_check: list[Outcome]
    seconds: float

    @property
    def student_dir(self) -> Path:
        return self.out / STUDENT_DIR

    @property
    def autograder_dir(self) -> Path:
        return self.out / AUTOGRADER_DIR


def assign(source: Path, out: Path, settings: GradeSettings | None = None) -> BuildReport:
    start = time.perf_counter()
    settings = settings or GradeSettings(isolation=trusted_isolation())
    student, autograder = build_bundles(source, out)
    solution, self_check = prove_solution(autograder, student, settings)
    blank = prove_blank(autograder, settings)
    return BuildReport(load_assignment(autograder).name, out, solution, blank, self_check,
                       time.perf_counter() - start)


def prove_solution(autograder: Path, student: Path, settings: GradeSettings) -> tuple[SubmissionResult, list[Outcome]]:
    """One run of the solution: record public expected values, grade fully, replay the recording."""
    bundle = load_assignment(autograder)
    public = [c for c in bundle.checks.checks if c.public]
    replayed: list[Outcome] = []

    def record_grade_replay(st: Student, ctx: Context) -> list[Outcome]:
        recording = Recording(bundle.reference)
        run_checks(public, st, recording, ctx)
        for meta in (student / STUDENT_META, autograder / BUNDLE_STUDENT_FILES / STUDENT_META):
            recording.save(meta / EXPECTED_NAME)
        outcomes = run_checks(bundle.checks.checks, st, bundle.reference, ctx)
        student_side = load_student_checks(student / STUDENT_META)
        replay = Replay.load(student / STUDENT_META / EXPECTED_NAME)
        replayed.extend(run_checks(student_side.checks.checks, st, replay, replace(ctx, hidden=None)))
        return outcomes

    solution = grade_submission(autograder / BUNDLE_SOLUTION, bundle, settings, record_grade_replay)
    refuse_check_errors(solution, "solution", autograder)
    if solution.status != "ok" or solution.total != solution.max_total:
        raise BuildError("the solution does not score full marks:\n" + explain(solution), autograder)
    failing = [o for o in replayed if not o.passed]
    if failing:
        raise BuildError("the public self-checks fail on the solution:\n" + explain_outcomes(failing), student)
    return solution, replayed


def prove_blank(autograder: Path, settings: GradeSettings) -> SubmissionResult:
    blank = grade_submission(autograder / BLANK_NAME, load_assignment(autograder), settings)
    refuse_check_errors(blank, "blank notebook", autograder)
    if blank.total != 0:
        raise BuildError("the blank notebook scores above zero:\n" + explain(blank, failing=False), autograder)
    return blank


def refuse_check_errors(result: SubmissionResult, what: str, where: Path) -> None:
    """A check that cannot run on the solution or the blank is a bug in the assignment: say where."""
    errors = [o for q in result.questions for o in q.outcomes if o.status == "error"]
    if errors:
        raise BuildError(f"checks could not run on the {what}:\n" + "\n".join(
            f"  {o.question}/{o.check}:\n{o.detail}" for o in errors), where)


def explain(result: SubmissionResult, failing: bool = True) -> str:
    """The outcomes that broke the proof: failed checks (solution) or passed ones (blank)."""
    lines = [f"status {result.status} {result.message}".rstrip()]
    lines += [f"  {e}" for e in result.cell_errors]
    outcomes = [o for q in result.questions for o in q.outcomes if ((o.score < 1) if failing else (o.score > 0))]
    return "\n".join(lines) + "\n" + explain_outcomes(outcomes)


def explain_outcomes(outcomes: list[Outcome]) -> str:
    return "\n".join(f"  {o.question}:\n" + "\n".join(outcome_lines(o, "instructor")) for o in outcomes)
