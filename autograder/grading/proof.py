"""`torchgrade assign`: build the student and autograder bundles from one source, and prove them.

Proof: one run of the solution (record the public checks' expected values from the reference, grade with
every check, then replay the public checks from the recorded file, on the solution's answers and on the same
answers each changed, as a student who answered wrongly), then the recording is packed into the
student notebook (`build/embed.py`), then one run of the blank notebook (grade with every check, and replay
the public checks as the student's self-check would). The solution must score full marks, the blank zero, the
recorded public checks must pass on the solution and run on the blank (a public check that asks the reference
about the student's answer cannot be replayed: it is refused by name); otherwise `assign` fails loudly.
`grading/validate.py` adds the assignment's examples to the same proof.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..build.assignment import BUNDLE_SOLUTION, BUNDLE_STUDENT_FILES, EXPECTED_NAME, STUDENT_META, load_assignment, \
    load_student_checks
from ..build.bundles import AUTOGRADER_DIR, BLANK_NAME, STUDENT_DIR, STUDENT_ZIP, build_bundles, embed_self_check, \
    zip_student
from ..build.recorded import NotRecorded, Recording, Replay
from ..checks import Context, run_checks
from ..checks.core import every_mistake_computed
from ..config import GradeSettings
from ..errors import BuildError
from ..kernel.isolation import trusted_isolation
from ..kernel.probe import Call, Student
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

    @property
    def student_zip(self) -> Path:
        return self.out / STUDENT_ZIP


def assign(source: Path, out: Path, settings: GradeSettings | None = None) -> BuildReport:
    """Build into a staging folder next to `out` and prove the build there; only a proven build replaces `out`'s
    two bundles, so a failed `assign` leaves nothing that looks complete (and no model answer) behind."""
    start = time.perf_counter()
    settings = settings or GradeSettings(isolation=trusted_isolation())
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        student, autograder = build_bundles(source, staging)
        solution, self_check = prove_solution(autograder, student, settings)
        embed_self_check(student, autograder)
        blank = prove_blank(autograder, student, settings)
        name = load_assignment(autograder).name
        zip_student(student, name)
        move_into(staging, out)
    except BuildError as exc:  # about the staged build, which is gone: name the assignment's source instead
        raise BuildError(exc.message, source) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildReport(name, out, solution, blank, self_check, time.perf_counter() - start)


def move_into(staging: Path, out: Path) -> None:
    """A proven build's two bundles and the student folder's zip replace `out`'s (nothing else in `out` is
    touched)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (STUDENT_DIR, AUTOGRADER_DIR, STUDENT_ZIP):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
        os.replace(staging / name, out / name)


def prove_solution(autograder: Path, student: Path, settings: GradeSettings) -> tuple[SubmissionResult, list[Outcome]]:
    """One run of the solution: record public expected values, grade fully, replay the recording."""
    bundle = load_assignment(autograder)
    public = [c for c in bundle.checks.checks if c.public]
    replayed: list[Outcome] = []
    unreplayable: list[Outcome] = []

    def record_grade_replay(st: Student, ctx: Context) -> list[Outcome]:
        recording = Recording(bundle.reference)
        with every_mistake_computed():
            run_checks(public, st, recording, ctx)
        for meta in (student / STUDENT_META, autograder / BUNDLE_STUDENT_FILES / STUDENT_META):
            recording.save(meta / EXPECTED_NAME)
        outcomes = run_checks(bundle.checks.checks, st, bundle.reference, ctx)
        student_side = load_student_checks(student / STUDENT_META)
        replay = Replay.load(student / STUDENT_META / EXPECTED_NAME)
        replayed.extend(run_checks(student_side.checks.checks, st, replay, replace(ctx, hidden=None)))
        wrong = run_checks(student_side.checks.checks, WrongAnswers(st), replay, replace(ctx, hidden=None))
        unreplayable.extend(o for o in wrong if o.status == "error" and NotRecorded.__name__ in o.message)
        return outcomes

    solution = grade_submission(autograder / BUNDLE_SOLUTION, bundle, settings, record_grade_replay)
    refuse_check_errors(solution, "solution", autograder)
    if solution.status != "ok" or solution.total != solution.max_automatic:  # written answers: a person's to grade
        raise BuildError("the solution does not score full marks:\n" + explain(solution), autograder)
    failing = [o for o in replayed if not o.passed]
    if failing:
        raise BuildError("the public self-checks fail on the solution:\n" + explain_outcomes(failing), student)
    refuse_self_check_errors(unreplayable, "wrong answers (the solution's answers, each changed)", student)
    return solution, replayed


@dataclass(frozen=True)
class WrongAnswers:
    """The student side of the solution, with every answer changed (`altered`): a student who answered everything,
    wrongly. The public checks replayed on it ask the reference only what they asked of the solution, unless a check
    asks the reference about the answer (only when it is wrong, or about the answer's own value): a value that was
    never recorded, which this finds without waiting for a student, or an example, to make that mistake."""

    student: Student

    @property
    def device(self) -> str:
        return self.student.device

    def value(self, name: str) -> Call:
        return changed(self.student.value(name))

    def call(self, target: str, *args: Any, **kwargs: Any) -> Call:
        return changed(self.student.call(target, *args, **kwargs))


def changed(call: Call) -> Call:
    return replace(call, value=altered(call.value)) if call.ok else call


def altered(value: Any) -> Any:
    """A different value of the same kind: numbers and tensors moved by one, booleans negated, containers item by
    item; anything else (modules, frames) as it was."""
    if isinstance(value, torch.Tensor):
        return ~value if value.dtype == torch.bool else value + 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(altered(v) for v in value)
    if isinstance(value, dict):
        return {k: altered(v) for k, v in value.items()}
    return value


def prove_blank(autograder: Path, student: Path, settings: GradeSettings) -> SubmissionResult:
    """The blank notebook scores zero, and the student's self-check runs on it (it fails, but runs)."""
    blank, replayed = grade_with_self_check(autograder / BLANK_NAME, autograder, student, settings)
    refuse_check_errors(blank, "blank notebook", autograder)
    refuse_self_check_errors(replayed, "the blank notebook", autograder)
    if blank.total != 0:
        raise BuildError("the blank notebook scores above zero: a model answer is outside `# BEGIN SOLUTION` / "
                         "`# END SOLUTION` (and not on a line ending in `# SOLUTION`), or a check gives credit for an "
                         "unanswered question. Checks that gave points:\n" + explain(blank, failing=False), autograder)
    return blank


def grade_with_self_check(notebook: Path, autograder: Path, student: Path, settings: GradeSettings,
                          name: str | None = None) -> tuple[SubmissionResult, list[Outcome]]:
    """Grade `notebook` with every check, and replay the public checks on it from the student bundle's recording,
    as the student's self-check would (on the same kernel)."""
    bundle = load_assignment(autograder)
    student_side = load_student_checks(student / STUDENT_META)
    replayed: list[Outcome] = []

    def grade_and_replay(st: Student, ctx: Context) -> list[Outcome]:
        outcomes = run_checks(bundle.checks.checks, st, bundle.reference, ctx)
        replayed.extend(run_checks(student_side.checks.checks, st, student_side.reference, replace(ctx, hidden=None)))
        return outcomes

    return grade_submission(notebook, bundle, settings, grade_and_replay, name=name), replayed


def refuse_self_check_errors(replayed: list[Outcome], what: str, where: Path) -> None:
    """A public check the self-check cannot run on some answer breaks the student's self-check: name it."""
    message = self_check_errors(replayed, what)
    if message:
        raise BuildError(message, where)


def self_check_errors(replayed: list[Outcome], what: str) -> str:
    """"" when every replayed public check ran; else which could not, on `what`, and why."""
    errors = [o for o in replayed if o.status == "error"]
    if not errors:
        return ""
    return (f"the student's self-check cannot run these public checks on {what} (checks/public.py): a public check "
            "may ask the reference (`ref`) only about inputs it chose, never about the student's answer, since the "
            "self-check replays the values recorded from the solution at assign time:\n" + "\n".join(
                f"  {o.question}/{o.check}: {o.message}" for o in errors))


def refuse_check_errors(result: SubmissionResult, what: str, where: Path) -> None:
    """A check that cannot run on the solution or the blank is a bug in the assignment: say where."""
    errors = [o for q in result.questions for o in q.outcomes if o.status == "error"]
    if errors:
        raise BuildError(f"checks could not run on the {what}:\n" + "\n".join(
            f"  {o.question}/{o.check}:\n" + indent(o.detail, 4) for o in errors), where)


def explain(result: SubmissionResult, failing: bool = True) -> str:
    """The outcomes that broke the proof: failed checks (solution) or passed ones (blank)."""
    lines = [f"  status {result.status}: {result.message}"] if result.status != "ok" else []
    lines += [f"  cell error: {e}" for e in result.cell_errors]
    outcomes = [o for q in result.questions for o in q.outcomes if ((o.score < 1) if failing else (o.score > 0))]
    return "\n".join(lines + [explain_outcomes(outcomes)])


def explain_outcomes(outcomes: list[Outcome]) -> str:
    """Outcomes grouped under their question, indented: `  question q:` then each check's lines."""
    lines: list[str] = []
    for question in dict.fromkeys(o.question for o in outcomes):
        lines.append(f"  question {question}:")
        for o in outcomes:
            if o.question == question:
                lines += ["    " + line for line in outcome_lines(o, "instructor")]
    return "\n".join(lines)


def indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.rstrip().splitlines())
