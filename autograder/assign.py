"""`torchgrade assign`: build the student and autograder bundles from one source, and prove them.

Straight line: read the source → write data → write the autograder bundle → write the
student bundle → prepare grader-only resources → prove the build with one run of the
solution (record the public checks' expected values from the reference, grade with every
check, then replay the public checks from the recorded file) and one run of the blank
notebook. The solution must score full marks, the blank zero, and the recorded public
checks must pass on the solution; otherwise `assign` fails loudly.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import mnist
from .assignment import (BUNDLE_HIDDEN, BUNDLE_REFERENCE, BUNDLE_SOLUTION, BUNDLE_STUDENT_FILES, CHECKS_DIR,
                         EXPECTED_NAME, STUDENT_META, Assignment, load_assignment, load_student_checks)
from .checks import Context, Outcome, run_checks
from .checks.render import outcome_lines
from .config import CONFIG_NAME, GradeSettings
from .errors import BuildError, ConfigError
from .notebook import Master, write_notebook
from .pipeline import grade_submission
from .kernel.isolation import trusted_isolation
from .kernel.probe import Student
from .recorded import Recording, Replay
from .results import SubmissionResult

STUDENT_DIR, AUTOGRADER_DIR = "student", "autograder"
BLANK_NAME = "blank.ipynb"
SELFCHECK_LIB = "lib"  # .torchgrade/lib/autograder: the self-check, shipped with the student notebook
DATA_DIR = "data"


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


def build_bundles(source: Path, out: Path) -> tuple[Path, Path]:
    """Write `out/student` and `out/autograder` (without proving them); returns both paths."""
    assignment = load_assignment(source)
    if assignment.kind != "source":
        raise ConfigError("`assign` builds from an assignment's source folder", source)
    master = read_master(assignment)
    student, autograder = prepare_out(out)
    write_data(assignment, student, autograder)
    write_autograder(assignment, master, autograder)
    write_student(assignment, master, student)
    prepare_hidden(assignment, autograder)
    return student, autograder


def read_master(assignment: Assignment) -> Master:
    path = assignment.root / assignment.config.notebook
    master = Master.read(path)
    if master.questions != assignment.config.question_ids:
        raise ConfigError(f"the notebook's questions {master.questions} differ from the configuration's "
                          f"{assignment.config.question_ids}", path)
    for q in assignment.config.question_ids:
        if not any(c.public for c in assignment.checks.for_question(q)):
            raise ConfigError(f"question {q!r} has no public check", assignment.root / CHECKS_DIR)
    return master


def prepare_out(out: Path) -> tuple[Path, Path]:
    """Replace a previous build's two folders; never delete anything else."""
    out.mkdir(parents=True, exist_ok=True)
    dirs = out / STUDENT_DIR, out / AUTOGRADER_DIR
    for d in dirs:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
    return dirs


def write_data(assignment: Assignment, student: Path, autograder: Path) -> None:
    """Real data sets in the layouts the real loaders read; hidden splits only for the grader."""
    for name in assignment.config.data:
        if name == "mnist":
            mnist.write_mnist(student / DATA_DIR, autograder / BUNDLE_HIDDEN / DATA_DIR)


def write_autograder(assignment: Assignment, master: Master, dest: Path) -> None:
    config = replace(assignment.config, reference=BUNDLE_REFERENCE)
    (dest / CONFIG_NAME).write_text(config.to_toml())
    shutil.copytree(assignment.root / CHECKS_DIR, dest / CHECKS_DIR,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(Path(assignment.reference.__file__), dest / BUNDLE_REFERENCE)
    write_notebook(master.solution(), dest / BUNDLE_SOLUTION)
    write_notebook(master.student(), dest / BLANK_NAME)
    (dest / BUNDLE_HIDDEN).mkdir(exist_ok=True)
    files = dest / BUNDLE_STUDENT_FILES
    files.mkdir()
    copy_student_files(assignment, files)
    write_meta(assignment, files / STUDENT_META)


def write_student(assignment: Assignment, master: Master, dest: Path) -> None:
    write_notebook(master.student(), dest / assignment.config.notebook)
    copy_student_files(assignment, dest)
    write_meta(assignment, dest / STUDENT_META)
    if (dest / DATA_DIR).is_dir():
        shutil.copytree(dest / DATA_DIR, dest.parent / AUTOGRADER_DIR / BUNDLE_STUDENT_FILES / DATA_DIR)


def copy_student_files(assignment: Assignment, dest: Path) -> None:
    for rel in assignment.config.student_files:
        src = assignment.root / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, dirs_exist_ok=True)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        else:
            raise ConfigError(f"student file {rel!r} does not exist", assignment.root)


def write_meta(assignment: Assignment, meta: Path) -> None:
    """The student's `.torchgrade/`: public checks and their config, no reference, no hidden seed."""
    meta.mkdir(parents=True, exist_ok=True)
    public = replace(assignment.config, reference=None, hidden_seed=0)
    (meta / CONFIG_NAME).write_text(public.to_toml())
    (meta / "__init__.py").write_text("")
    shutil.copy2(assignment.root / CHECKS_DIR / "public.py", meta / "public.py")
    torch.save({}, meta / EXPECTED_NAME)
    # the self-check itself, so a student needs only PyTorch; an installed torchgrade comes first on sys.path
    shutil.copytree(Path(__file__).resolve().parent, meta / SELFCHECK_LIB / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)


def prepare_hidden(assignment: Assignment, autograder: Path) -> None:
    """Grader-only resources the reference knows how to make (e.g. a classifier that scores samples)."""
    prepare = getattr(assignment.reference, "prepare", None)
    if prepare is not None:
        prepare(autograder / BUNDLE_HIDDEN, autograder / BUNDLE_STUDENT_FILES / DATA_DIR)


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
