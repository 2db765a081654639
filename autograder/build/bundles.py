"""Building an assignment's two bundles from its source: the student's and the autograder's.

Straight line: read the source → write data → write the autograder bundle → write the student bundle →
prepare grader-only resources. Proving the bundles (the solution scores full marks, the blank zero) grades
notebooks, so it lives a layer up, in `grading/proof.py`.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import torch

from ..config import CONFIG_NAME
from ..errors import ConfigError
from ..extensions import load
from .assignment import (BLANK_NAME, BUNDLE_HIDDEN, BUNDLE_REFERENCE, BUNDLE_SOLUTION, BUNDLE_STUDENT_FILES, CHECKS_DIR,
                         DATA_DIR, EXPECTED_NAME, STUDENT_META, Assignment, load_assignment)
from .notebook import Master, write_notebook

STUDENT_DIR, AUTOGRADER_DIR = "student", "autograder"
STUDENT_ZIP = "student.zip"  # the student folder as one file, to hand out where an upload keeps no folder
SELFCHECK_LIB = "lib"  # .torchgrade/lib/autograder: the self-check, shipped with the student notebook


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
    problem = question_list_problem(master.questions, assignment.config.question_ids)
    if problem:
        raise ConfigError(problem, path)
    for q in [q.id for q in assignment.config.questions if q.kind != "manual"]:  # a person grades manual ones
        if not any(c.public for c in assignment.checks.for_question(q)):
            raise ConfigError(f"question {q!r} has no public check", assignment.root / CHECKS_DIR)
    return master


def question_list_problem(in_notebook: list[str], in_config: list[str]) -> str:
    """assignment.toml's [[questions]] are the question list (ids, points, order); the notebook's BEGIN QUESTION
    cells must name the same ids in the same order. "" when they do, else what differs."""
    if in_notebook == in_config:
        return ""
    lines = ["the notebook's questions differ from assignment.toml's [[questions]] (the list of questions, with their "
             "points and order; every question needs a `# BEGIN QUESTION` raw cell with `name: <id>` in the notebook)"]
    lines += [f"  {q!r} is in assignment.toml but no BEGIN QUESTION cell names it" for q in in_config
              if q not in in_notebook]
    lines += [f"  {q!r} has a BEGIN QUESTION cell but no [[questions]] table in assignment.toml" for q in in_notebook
              if q not in in_config]
    if len(lines) == 1:
        lines.append(f"  the order differs: notebook {', '.join(in_notebook)}; assignment.toml {', '.join(in_config)}")
    return "\n".join(lines)


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
        load("dataset", name)(student / DATA_DIR, autograder / BUNDLE_HIDDEN / DATA_DIR)


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
    shutil.copytree(Path(__file__).resolve().parents[1], meta / SELFCHECK_LIB / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)


def embed_self_check(student: Path, autograder: Path) -> None:
    """Pack the student's `.torchgrade/` (with the values recorded from the solution) into the student notebook, and
    into the blank and the solution, which stand for it when the build is proved (`build/embed.py`)."""
    from .embed import embed

    config = load_assignment(autograder).config
    for notebook in (student / config.notebook, autograder / BLANK_NAME, autograder / BUNDLE_SOLUTION):
        embed(notebook, student / STUDENT_META)


def prepare_hidden(assignment: Assignment, autograder: Path) -> None:
    """Grader-only resources the reference knows how to make (e.g. a classifier that scores samples)."""
    prepare = getattr(assignment.reference, "prepare", None)
    if prepare is not None:
        prepare(autograder / BUNDLE_HIDDEN, autograder / BUNDLE_STUDENT_FILES / DATA_DIR)


def zip_student(student: Path, name: str) -> Path:
    """The student folder as `student.zip` beside it, every file under one folder named after the assignment: its
    notebook, its `.torchgrade/` folder (which a copy of the folder's visible files, or an upload page, can drop
    unseen) and its `data/`. The same files give the same bytes."""
    import zipfile

    from .embed import write

    target = student.parent / STUDENT_ZIP
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(student.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                write(zf, f"{name}/{path.relative_to(student).as_posix()}", path)
    return target
