"""End-to-end runs of the `torchgrade` command on real notebooks."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import autograder
from autograder.build.assignment import load_assignment
from autograder.checks import CheckSet, run_check
from autograder.checks.core import every_mistake_computed
from autograder.kernel.probe import LocalStudent
from autograder.build.recorded import Recording
from conftest import ASSIGNMENTS

pytestmark = pytest.mark.slow
EXAMPLES = ASSIGNMENTS / "convolution" / "examples"


def torchgrade(*args, cwd=None, check=False):
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "convolution"
    proc = torchgrade("assign", ASSIGNMENTS / "convolution", "--out", out, check=True)
    assert "solution: 21/21" in proc.stdout and "blank: 0/21" in proc.stdout
    return out


def test_grade_writes_gradebook_results_and_feedback(built, tmp_path):
    subs = [built / "autograder" / "solution.ipynb", EXAMPLES / "flipped_kernel.ipynb", EXAMPLES / "no_sqrt.ipynb"]
    out = tmp_path / "grades"
    torchgrade("grade", built / "autograder", *subs, "--out", out, "--jobs", "2", check=True)
    frame = pd.read_csv(out / "gradebook.csv")
    assert list(frame.columns) == ["submission", "conv2d_single", "conv2d", "max_pool2d", "sobel", "total",
                                   "max_total", "status", "flags", "review", "raw_total", "late", "penalty"]
    assert frame["flags"].isna().all() and frame["review"].isna().all()  # honest notebooks: nothing to look at
    rows = frame.set_index("submission")
    assert rows.loc["solution", "total"] == 21 and rows.loc["flipped_kernel", "total"] == 8
    assert rows.loc["no_sqrt", "sobel"] == 1 and set(rows["status"]) == {"ok"}
    result = json.loads((out / "results" / "flipped_kernel.json").read_text())
    assert result["score"] == 8 and "execution_time" in result
    for test in result["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
    questions = [t["name"].split(" / ")[0] for t in result["tests"]]
    assert list(dict.fromkeys(questions)) == ["conv2d_single", "conv2d", "max_pool2d", "sobel"]  # a test per check
    assert sum(t["score"] for t in result["tests"]) == pytest.approx(8, abs=0.01)
    public = {c.name for c in load_assignment(built / "autograder").checks.checks if c.public}
    for test in result["tests"]:
        check = test["name"].split(" / ")[1]
        assert test["visibility"] == ("visible" if check in public else "after_published"), test
    assert "path" not in result["extra_data"]  # no path of the grader's machine in a student-facing file
    text = (out / "feedback" / "flipped_kernel.txt").read_text()
    assert "flipped kernel" in text and (out / "feedback" / "flipped_kernel.html").exists()
    assert (out / "instructor" / "flipped_kernel.txt").exists()

    again = torchgrade("grade", built / "autograder", *subs, "--out", out, check=True)
    assert "skipped 3 already graded" in again.stdout
    forced = torchgrade("grade", built / "autograder", subs[1], "--out", out, "--force", check=True)
    assert "graded 1 in" in forced.stdout
    assert len(pd.read_csv(out / "gradebook.csv")) == 3
    rebuilt = tmp_path / "rebuilt"  # the assignment built again, with a check changed: its grades are stale
    shutil.copytree(built / "autograder", rebuilt)
    (rebuilt / "checks" / "hidden.py").write_text((rebuilt / "checks" / "hidden.py").read_text() + "\n# changed\n")
    regraded = torchgrade("grade", rebuilt, *subs, "--out", out, check=True)
    assert "graded 3 in" in regraded.stdout and "skipped" not in regraded.stdout


def test_grading_from_the_source_folder_matches_the_bundle(built, tmp_path):
    torchgrade("grade", ASSIGNMENTS / "convolution", EXAMPLES / "pool_stride_one.ipynb", "--out", tmp_path,
               check=True)
    assert pd.read_csv(tmp_path / "gradebook.csv").loc[0, "max_pool2d"] == 1
    # built again for the rerun (new cell ids in its notebooks, nothing else): the same assignment, nothing regraded
    again = torchgrade("grade", ASSIGNMENTS / "convolution", EXAMPLES / "pool_stride_one.ipynb", "--out", tmp_path,
                       check=True)
    assert "skipped 1 already graded" in again.stdout


@pytest.mark.parametrize("executor", [[], ["--executor", "dask", "--jobs", "2"]], ids=["local", "dask"])
def test_a_killed_batch_keeps_its_grades_and_resumes(built, tmp_path, executor):
    if executor:
        pytest.importorskip("distributed")
    subs = sorted(EXAMPLES.glob("*.ipynb"))
    out = tmp_path / "grades"
    proc = subprocess.Popen([sys.executable, "-m", "autograder.cli", "grade", str(built / "autograder"),
                             *map(str, subs), "--out", str(out), *executor], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = {p.stem for p in (out / "results").glob("*.json")}
    assert 0 < len(written) < len(subs)  # killed mid-batch: some written, not all
    with sqlite3.connect(out / ".torchgrade-records.sqlite") as db:
        recorded = {row[0] for row in db.execute("SELECT submission FROM results")}
    rows = set(pd.read_csv(out / "gradebook.csv")["submission"])  # recorded, then a gradebook row, then the files:
    assert written <= rows <= recorded and len(recorded - written) <= 1  # a kill in between: one row ahead
    resumed = torchgrade("grade", built / "autograder", *subs, "--out", out, *executor, check=True)
    assert f"skipped {len(recorded)} already graded" in resumed.stdout  # nothing graded is lost, or graded twice
    frame = pd.read_csv(out / "gradebook.csv")
    assert sorted(frame["submission"]) == [p.stem for p in subs] and set(frame["status"]) == {"ok"}


def test_check_runs_the_public_checks_in_a_fresh_kernel(built, tmp_path):
    student = tmp_path / "student"
    shutil.copytree(built / "student", student)
    blank = torchgrade("check", student / "convolution.ipynb")
    assert blank.returncode == 1 and "0/2 public checks passed" in blank.stdout
    shutil.copy(built / "autograder" / "solution.ipynb", student / "mine.ipynb")
    solved = torchgrade("check", student / "mine.ipynb", check=True)
    assert "conv2d: 2/2 public checks passed" in solved.stdout and "✘" not in solved.stdout
    said = " ".join(solved.stdout.split())  # where the checks came from, and the whole in one line
    assert f"checking mine.ipynb with the self-check of {student / '.torchgrade'}" in said
    assert re.fullmatch(r"all of \d+ public checks passed", solved.stdout.strip().splitlines()[-1])
    assert re.fullmatch(r"0 of \d+ public checks passed", blank.stdout.strip().splitlines()[-1])


def test_check_refuses_what_is_no_notebook_naming_it(built, tmp_path):
    """Found by a newcomer's trial: beside a `.torchgrade/` folder, `check` on a file that is not a notebook printed
    "invalid", then every question's "0/0 public checks passed", and exited 0, as if it had passed. Now the file is
    named and said not to be a notebook (exit 2), as is a folder given for a notebook."""
    student = tmp_path / "student"
    shutil.copytree(built / "student", student)
    for name, text, said in (("hello.ipynb", "hello\n", "not a notebook: the file is not JSON"),
                             ("dict.ipynb", '{"a": 1}', "not a notebook: JSON without a list of cells")):
        (student / name).write_text(text)
        out = torchgrade("check", student / name)
        message = " ".join((out.stdout + out.stderr).split())
        assert out.returncode == 2 and f"{name}: {said}" in message and "passed" not in message, message
    folder = torchgrade("check", student)
    assert folder.returncode == 2 and "a folder, not a notebook" in " ".join(folder.stderr.split() + folder.stdout.split())


def test_check_on_a_notebook_alone_uses_its_packed_self_check(built, tmp_path):
    """A notebook handed out without its `.torchgrade/` folder (an LMS keeps only the `.ipynb`) self-checks from the
    command line as it does in Jupyter: from the checks its packed cell carries, read, not run."""
    alone = tmp_path / "downloads"
    alone.mkdir()
    shutil.copy(built / "student" / "convolution.ipynb", alone / "convolution.ipynb")
    blank = torchgrade("check", alone / "convolution.ipynb")
    assert blank.returncode == 1 and "0/2 public checks passed" in blank.stdout, blank.stdout + blank.stderr
    solution = json.loads((built / "autograder" / "solution.ipynb").read_text())  # the cells a student's copy has
    packed = [c for c in solution["cells"] if "selfcheck-files" in c.get("metadata", {}).get("tags", [])]
    assert len(packed) == 1
    shutil.copy(built / "autograder" / "solution.ipynb", alone / "mine.ipynb")
    solved = torchgrade("check", alone / "mine.ipynb", check=True)
    assert "conv2d: 2/2 public checks passed" in solved.stdout and "✘" not in solved.stdout
    assert "checking mine.ipynb with its packed self-check (no .torchgrade/ folder beside it)" in solved.stdout
    (alone / "bare.ipynb").write_text(json.dumps({**solution, "cells": [c for c in solution["cells"]
                                                                        if c not in packed]}))
    bare = torchgrade("check", alone / "bare.ipynb")
    said = " ".join(bare.stdout.split())
    assert bare.returncode == 2 and "no packed self-check cell in it" in said and "bare.ipynb" in said


def test_assign_zips_the_student_folder_to_hand_out(built):
    """Found by a newcomer's trial: the docs said students get `student/`, not how to hand it out, and a copy of its
    visible files or an upload page drops `.torchgrade/` unseen. `assign` writes `student.zip`: the student folder,
    every file of it and nothing else, under one folder named after the assignment."""
    import zipfile

    with zipfile.ZipFile(built / "student.zip") as zf:
        names = sorted(zf.namelist())
        student = built / "student"
        assert names == sorted(f"convolution/{p.relative_to(student).as_posix()}" for p in student.rglob("*")
                               if p.is_file() and "__pycache__" not in p.parts)
        assert "convolution/.torchgrade/assignment.toml" in names and "convolution/convolution.ipynb" in names
        assert zf.read("convolution/convolution.ipynb") == (student / "convolution.ipynb").read_bytes()


def test_student_bundle_holds_no_answer_hidden_check_or_hidden_value(built):
    student = built / "student"
    lib = student / ".torchgrade" / "lib" / "autograder"  # the self-check: torchgrade's own source, as installed
    package = Path(autograder.__file__).parent
    shipped = sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file())
    assert shipped and all((lib / f).read_bytes() == (package / f).read_bytes() for f in shipped)
    files = sorted(p.relative_to(student).as_posix() for p in student.rglob("*") if p.is_file() and lib not in p.parents)
    assert files == [".torchgrade/__init__.py", ".torchgrade/assignment.toml", ".torchgrade/expected.pt",
                     ".torchgrade/public.py", "convolution.ipynb"]
    text = "\n".join((student / f).read_text(errors="ignore") for f in files if not f.endswith(".pt"))
    master = (ASSIGNMENTS / "convolution" / "convolution.ipynb").read_text()
    answers = solution_lines(json.loads(master))
    notebook = (student / "convolution.ipynb").read_text()
    assert answers and not [line for line in answers if line in notebook]
    assert not [line for line in answers if len(line) > 30 and line in text]
    assert "hidden_seed = 917263" not in text and "reference" not in (student / ".torchgrade" / "assignment.toml").read_text()
    assert "checks.hidden" not in text and "F.conv2d(" not in text

    # the recorded expected values are exactly those the public checks need, none of the hidden ones
    recorded = set(torch.load(student / ".torchgrade" / "expected.pt", weights_only=True))
    source = load_assignment(ASSIGNMENTS / "convolution")
    public = record(source, [c for c in source.checks.checks if c.public], source.config.seed)
    hidden = record(source, [c for c in source.checks.checks if not c.public], source.config.hidden_seed)
    assert recorded == public and not recorded & (hidden - public)


def solution_lines(nb) -> list[str]:
    lines, inside = [], False
    for cell in nb["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if "# END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.append(line.strip())
            elif "# BEGIN SOLUTION" in line:
                inside = True
    return lines


def record(source, checks, seed) -> set[str]:
    recording = Recording(source.reference)
    solution_namespace = {n: getattr(source.reference, n) for n in
                          ("conv2d_single", "conv2d", "max_pool2d", "edge_magnitude", "SOBEL_X", "SOBEL_Y")}
    with every_mistake_computed():  # as the build records them: a wrong answer's self-check needs the mistakes too
        for c in CheckSet(checks).checks:
            run_check(c, LocalStudent(solution_namespace), recording, seed)
    return set(recording.records)


def test_bad_command_lines_get_clear_errors(built, tmp_path):
    missing = torchgrade("grade", built / "autograder", tmp_path / "nope.ipynb", "--out", tmp_path)
    assert missing.returncode == 2 and "nope.ipynb: no such submission" in missing.stdout
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    shutil.copy(EXAMPLES / "partial.ipynb", tmp_path / "a" / "x.ipynb")
    shutil.copy(EXAMPLES / "partial.ipynb", tmp_path / "b" / "x.ipynb")
    twice = torchgrade("grade", built / "autograder", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "o")
    assert twice.returncode == 2 and "would share a name" in twice.stdout and "'x'" in twice.stdout
    not_assignment = torchgrade("grade", tmp_path, EXAMPLES / "partial.ipynb", "--out", tmp_path / "o")
    assert not_assignment.returncode == 2 and "assignment.toml" in not_assignment.stdout
    student = torchgrade("grade", built / "student", EXAMPLES / "partial.ipynb", "--out", tmp_path / "o")
    assert student.returncode == 2 and "student bundle" in student.stdout


@pytest.mark.parametrize("jobs, line, says", [
    ("1", "raise RuntimeError('a typo in the checks')", "public.py: line {n}: raised RuntimeError: a typo in the checks"),
    ("2", "raise RuntimeError('a typo in the checks')", "public.py: line {n}: raised RuntimeError: a typo in the checks"),
    ("1", "import sys; sys.exit('no GPU here')", "public.py: line {n}: raised SystemExit: no GPU here"),
    ("2", "import sys; sys.exit('no GPU here')", "public.py: line {n}: raised SystemExit: no GPU here"),
    ("2", "import os; os._exit(3)", "checks: a grading worker exited with status 3 while it loaded the checks"),
])
def test_a_bundle_whose_checks_do_not_load_fails_the_batch_before_it_starts(built, tmp_path, jobs, line, says):
    """With more than one job the checks load only in the workers (the process that hands out work never imports
    torch): a bundle whose checks raise, exit or kill their process as they load still fails the command before any
    grading, naming the file (and line), and writes nothing; as with one job, where they load in the grading
    process."""
    bundle = tmp_path / "autograder"
    shutil.copytree(built / "autograder", bundle)
    public = bundle / "checks" / "public.py"
    lines = public.read_text().count("\n")
    public.write_text(public.read_text() + line + "\n")
    proc = torchgrade("grade", bundle, EXAMPLES / "partial.ipynb", "--out", tmp_path / "o", "--jobs", jobs)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    said = " ".join(proc.stdout.split())
    assert says.format(n=lines + 1) in said, said
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_grading_refuses_where_submissions_cannot_be_isolated(built, tmp_path):
    env = {**os.environ, "TORCHGRADE_BWRAP": str(tmp_path / "no-bwrap")}
    sub = built / "autograder" / "solution.ipynb"
    refused = subprocess.run([sys.executable, "-m", "autograder.cli", "grade", str(built / "autograder"), str(sub),
                              "--out", str(tmp_path / "o"), "--isolation", "bwrap"], capture_output=True, text=True,
                             env=env, timeout=600)
    assert refused.returncode == 2
    assert "cannot isolate submissions here" in refused.stdout and "--no-isolation" in refused.stdout
    assert not (tmp_path / "o" / "gradebook.csv").exists()
    trusted = subprocess.run([sys.executable, "-m", "autograder.cli", "grade", str(built / "autograder"), str(sub),
                              "--out", str(tmp_path / "o"), "--no-isolation"], capture_output=True, text=True, env=env,
                             timeout=600)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert "without isolation" in trusted.stdout
    assert pd.read_csv(tmp_path / "o" / "gradebook.csv").loc[0, "total"] == 21


def test_demo_runs_offline_on_cpu(tmp_path):
    proc = torchgrade("demo", "--out", tmp_path / "demo", cwd=Path(__file__).parent.parent, check=True)
    frame = pd.read_csv(tmp_path / "demo" / "grades" / "convolution" / "gradebook.csv")
    assert len(frame) == 9 and frame.set_index("submission").loc["solution", "total"] == 21
    assert "gradebook" in proc.stdout


def test_grade_names_a_folder_per_student_after_the_folder(built, tmp_path):
    subs = tmp_path / "downloads"
    for student, example in (("alice", "flipped_kernel"), ("bob[red]", "no_sqrt")):
        (subs / student).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{example}.ipynb", subs / student / "convolution.ipynb")
    out = tmp_path / "grades"
    proc = torchgrade("grade", built / "autograder", subs, "--out", out, check=True)
    rows = pd.read_csv(out / "gradebook.csv").set_index("submission")
    assert rows.loc["alice", "total"] == 8 and rows.loc["bob[red]", "sobel"] == 1
    assert "bob[red]" in proc.stdout  # not read as markup
    assert (out / "feedback" / "bob[red].txt").is_file()
    (subs / "alice" / "convolution-Copy1.ipynb").write_bytes((subs / "alice" / "convolution.ipynb").read_bytes())
    refused = torchgrade("grade", built / "autograder", subs, "--out", tmp_path / "again", "--name-from", "folder")
    assert refused.returncode == 2 and "alice/: convolution-Copy1.ipynb, convolution.ipynb" in refused.stdout
    assert not (tmp_path / "again" / "gradebook.csv").exists()
