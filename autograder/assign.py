"""`torchgrade assign`: build the student and autograder bundles from one source, and prove them.

Straight line: read the source → write the autograder bundle → write the student bundle →
record the public checks' expected values from the reference (running the solution) →
prove the build: the solution scores full marks, the blank notebook scores zero, and the
recorded public checks pass on the solution in the student's own form.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .assignment import (BUNDLE_REFERENCE, BUNDLE_SOLUTION, BUNDLE_STUDENT_FILES, CHECKS_DIR, EXPECTED_NAME,
                         STUDENT_META, Assignment, load_assignment, load_student_checks)
from .checks import CheckSet
from .config import CONFIG_NAME, GradeSettings
from .errors import BuildError, ConfigError
from .notebook import Master, write_notebook
from .pipeline import grade_submission
from .recorded import Recording
from .results import SubmissionResult

STUDENT_DIR, AUTOGRADER_DIR = "student", "autograder"
BLANK_NAME = "blank.ipynb"


@dataclass(frozen=True)
class BuildReport:
    name: str
    out: Path
    solution: SubmissionResult
    blank: SubmissionResult
    self_check: SubmissionResult
    seconds: float

    @property
    def student_dir(self) -> Path:
        return self.out / STUDENT_DIR

    @property
    def autograder_dir(self) -> Path:
        return self.out / AUTOGRADER_DIR


def assign(source: Path, out: Path, settings: GradeSettings | None = None) -> BuildReport:
    start = time.perf_counter()
    settings = settings or GradeSettings()
    assignment = load_assignment(source)
    if assignment.kind != "source":
        raise ConfigError("`assign` builds from an assignment's source folder", source)
    master = read_master(assignment)
    student, autograder = prepare_out(out)
    write_autograder(assignment, master, autograder)
    write_student(assignment, master, student)
    record_expected(autograder, student, settings)
    solution, blank, self_check = prove(autograder, student, settings)
    return BuildReport(assignment.name, out, solution, blank, self_check, time.perf_counter() - start)


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


def write_autograder(assignment: Assignment, master: Master, dest: Path) -> None:
    config = replace(assignment.config, reference=BUNDLE_REFERENCE)
    (dest / CONFIG_NAME).write_text(config.to_toml())
    shutil.copytree(assignment.root / CHECKS_DIR, dest / CHECKS_DIR,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(Path(assignment.reference.__file__), dest / BUNDLE_REFERENCE)
    write_notebook(master.solution(), dest / BUNDLE_SOLUTION)
    write_notebook(master.student(), dest / BLANK_NAME)
    files = dest / BUNDLE_STUDENT_FILES
    files.mkdir()
    copy_student_files(assignment, files)
    write_meta(assignment, files / STUDENT_META)


def write_student(assignment: Assignment, master: Master, dest: Path) -> None:
    write_notebook(master.student(), dest / assignment.config.notebook)
    copy_student_files(assignment, dest)
    write_meta(assignment, dest / STUDENT_META)


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


def record_expected(autograder: Path, student: Path, settings: GradeSettings) -> None:
    """Run the public checks on the solution with the reference recording what it returns."""
    bundle = load_assignment(autograder)
    recording = Recording(bundle.reference)
    public = CheckSet([c for c in bundle.checks.checks if c.public])
    plan = replace(bundle, checks=public, reference=recording)
    grade_submission(autograder / BUNDLE_SOLUTION, plan, replace(settings, device="cpu"))
    for meta in (student / STUDENT_META, autograder / BUNDLE_STUDENT_FILES / STUDENT_META):
        recording.save(meta / EXPECTED_NAME)


def prove(autograder: Path, student: Path, settings: GradeSettings) -> tuple[SubmissionResult, ...]:
    bundle = load_assignment(autograder)
    solution = grade_submission(autograder / BUNDLE_SOLUTION, bundle, settings)
    if solution.status != "ok" or solution.total != solution.max_total:
        raise BuildError("the solution does not score full marks:\n" + explain(solution), autograder)
    blank = grade_submission(autograder / BLANK_NAME, bundle, settings)
    if blank.total != 0:
        raise BuildError("the blank notebook scores above zero:\n" + explain(blank, failing=False), autograder)
    self_check = grade_submission(autograder / BUNDLE_SOLUTION, load_student_checks(student / STUDENT_META),
                                  replace(settings, device="cpu"))
    failing = [o for q in self_check.questions for o in q.outcomes if not o.passed]
    if failing:
        raise BuildError("the public self-checks fail on the solution:\n" + explain(self_check), student)
    return solution, blank, self_check


def explain(result: SubmissionResult, failing: bool = True) -> str:
    """The outcomes that broke the proof: failed checks (solution) or passed ones (blank)."""
    lines = [f"status {result.status} {result.message}".rstrip()]
    lines += [f"  {e}" for e in result.cell_errors]
    for q in result.questions:
        for o in q.outcomes:
            if (o.score < 1) if failing else (o.score > 0):
                lines.append(f"  {q.id}/{o.check}: {o.message} {o.hint}".rstrip())
    return "\n".join(lines)
