"""Every assignment's student bundle holds no answer, no hidden check and no hidden data."""

from __future__ import annotations

import hashlib
import json

import pytest

from autograder.build.bundles import build_bundles
from conftest import ASSIGNMENTS

NAMES = sorted(p.parent.name for p in ASSIGNMENTS.glob("*/assignment.toml"))


def solution_lines(nb: dict) -> list[str]:
    """Distinctive lines inside the master notebook's BEGIN/END SOLUTION blocks and `# SOLUTION` lines."""
    lines, inside = [], False
    for cell in nb["cells"]:
        for line in "".join(cell["source"]).splitlines():
            text = line.strip()
            if "# END SOLUTION" in text:
                inside = False
            elif "# BEGIN SOLUTION" in text:
                inside = True
            elif (inside or text.endswith("# SOLUTION")) and len(text) > 20:
                lines.append(text.removesuffix("# SOLUTION").strip())
    return lines


def digests(folder):
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", NAMES)
def test_student_bundle_leaks_nothing(name, tmp_path):
    student, autograder = build_bundles(ASSIGNMENTS / name, tmp_path / name)
    files = {p.relative_to(student).as_posix() for p in student.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith(("hidden.py", "reference.py", "solution.ipynb"))]
    assert {".torchgrade/public.py", ".torchgrade/assignment.toml", f"{name}.ipynb"} <= files

    # the code students get holds none of the answers (prompts may quote the lecture's code on purpose)
    student_nb = json.loads((student / f"{name}.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in student_nb["cells"] if c["cell_type"] == "code")
    checks_code = "\n".join(p.read_text() for p in (student / ".torchgrade").glob("*.py"))
    master = json.loads((ASSIGNMENTS / name / f"{name}.ipynb").read_text())
    answers = solution_lines(master)
    assert answers, "the master notebook has model answers"
    assert not [line for line in answers if line in code]
    assert not [line for line in answers if len(line) > 30 and line in checks_code]

    meta = (student / ".torchgrade" / "assignment.toml").read_text()
    assert "reference" not in meta and "hidden_seed = 0" in meta

    hidden = autograder / "hidden"
    if (hidden / "data").is_dir():
        student_bytes = digests(student)
        hidden_test = [p for p in (hidden / "data").rglob("t10k-*")]
        assert hidden_test and not [p for p in hidden_test if hashlib.sha256(p.read_bytes()).hexdigest() in student_bytes]
        assert sorted(p.name for p in (student / "data" / "MNIST" / "raw").iterdir()) == [
            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]


def packed_files(notebook) -> dict[str, bytes]:
    """The files the student notebook's packed self-check cell carries (build/embed.py)."""
    import base64
    import io
    import re
    import zipfile

    cell = next(c for c in json.loads(notebook.read_text())["cells"]
                if "selfcheck-files" in c.get("metadata", {}).get("tags", []))
    packed = re.search(r'_packed = "([A-Za-z0-9+/=]+)"', "".join(cell["source"])).group(1)
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(packed))) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.mark.slow
def test_the_packed_self_check_carries_public_files_only(convolution_build):
    """The notebook's packed cell holds what `.torchgrade/` holds for the self-check, and nothing of the grader's."""
    student = convolution_build.student_dir
    files = packed_files(student / "convolution.ipynb")
    assert {".torchgrade/public.py", ".torchgrade/assignment.toml", ".torchgrade/expected.pt",
            "lib/autograder/selfcheck.py", "lib/autograder/build/selfcheck.py"} <= set(files)
    assert files[".torchgrade/expected.pt"] == (student / ".torchgrade" / "expected.pt").read_bytes()  # recorded
    assert not [n for n in files if n.endswith(("hidden.py", "reference.py", ".ipynb"))]
    assert not [n for n in files if n.startswith("lib/autograder/") and n.split("/")[2] in ("grading", "report", "cli",
                                                                                            "export")]
    master = json.loads((ASSIGNMENTS / "convolution" / "convolution.ipynb").read_text())
    text = b"\n".join(files.values()).decode("utf-8", errors="replace")
    assert not [line for line in solution_lines(master) if len(line) > 30 and line in text]
    assert b"reference" not in files[".torchgrade/assignment.toml"]


RUN_ALL = """
import json, sys
nb = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for cell in nb["cells"]:  # like Jupyter's Run All: the first error stops the run
    if cell["cell_type"] == "code":
        exec(compile("".join(cell["source"]), "cell", "exec"), ns)
print("reached the end")
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_run_all_reaches_the_end_of_an_unfinished_notebook(name, tmp_path):
    """Ungraded cells that use answers are guarded in the master notebooks: Run All (and nbconvert --execute) on the
    unanswered student notebook reaches `grader.check_all()` instead of stopping at the first unfinished answer."""
    import subprocess
    import sys

    student, _ = build_bundles(ASSIGNMENTS / name, tmp_path / name)
    (tmp_path / "run_all.py").write_text(RUN_ALL)
    proc = subprocess.run([sys.executable, str(tmp_path / "run_all.py"), f"{name}.ipynb"], cwd=student,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "reached the end" in proc.stdout, proc.stderr[-1500:]


@pytest.mark.slow
def test_grading_scans_the_packed_cell_and_finds_nothing_unless_it_was_altered(convolution_build):
    """The setup cell stays the constant grading trusts; the packed cell before it is scanned like any cell: clean as
    built, flagged once a submission changes it."""
    import nbformat

    from autograder.build.notebook import SETUP_SOURCE
    from autograder.kernel.integrity import scan_source

    nb = nbformat.read(convolution_build.student_dir / "convolution.ipynb", as_version=4)
    assert [c.source for c in nb.cells if c.cell_type == "code"][1] == SETUP_SOURCE
    assert scan_source(nb, trusted=[SETUP_SOURCE]) == []
    packed = next(c for c in nb.cells if "selfcheck-files" in c.metadata.get("tags", []))
    packed.source = packed.source.replace("import base64", "import ctypes, base64")
    assert [f.kind for f in scan_source(nb, trusted=[SETUP_SOURCE])] == ["native"]


def test_a_damaged_packed_cell_says_so_in_the_notebook(tmp_path, monkeypatch, capsys):
    """Found by a newcomer's trial: run in Jupyter, a packed cell whose text was damaged stopped the notebook with
    zipfile's `BadZipFile`, even with the `.torchgrade/` folder beside the notebook, which serves the setup cell
    just as well. It now says what is wrong and what to do, and lets the next cell go on."""
    import base64
    import sys

    from autograder.build.embed import PACKED_SOURCE

    damaged = base64.b64encode(b"PK\x03\x04 not a zip at all").decode()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    namespace: dict = {}
    exec(compile(PACKED_SOURCE.format(packed=damaged, variable="SELFCHECK_FILES"), "packed cell", "exec"), namespace)
    said = " ".join(capsys.readouterr().out.split())
    assert said.startswith("This self-check cell is damaged (BadZipFile: ") and "take it from a fresh copy" in said
    assert "SELFCHECK_FILES" not in namespace


def test_a_packed_cell_is_unpacked_from_its_text_and_refused_when_damaged(tmp_path):
    """`torchgrade check` on a notebook alone reads the packed cell's `.torchgrade/` files without running the cell:
    a path outside the folder is not written, and a damaged cell is named."""
    import base64
    import io
    import zipfile

    import nbformat

    from autograder.build.embed import PACKED_SOURCE, PACKED_TAG, unpack
    from autograder.errors import BuildError

    def notebook(packed: str, name: str):
        cell = nbformat.v4.new_code_cell(PACKED_SOURCE.format(packed=packed, variable="SELFCHECK_FILES"))
        cell.metadata = {"tags": [PACKED_TAG]}
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
        return path

    def packed(*members: tuple[str, str]) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, text in members:
                zf.writestr(name, text)
        return base64.b64encode(buffer.getvalue()).decode()

    config = (".torchgrade/assignment.toml", "name = 'x'\n")
    fine = packed(config, (".torchgrade/public.py", "# checks\n"), (".torchgrade/../escaped.py", "x = 1\n"),
                  (".torchgrade/.", "a file named as the folder\n"),
                  ("lib/autograder/selfcheck.py", "# the installed one is used\n"))
    meta = unpack(notebook(fine, "fine"), tmp_path / "out")
    assert meta == tmp_path / "out" / ".torchgrade"
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()) \
        == [".torchgrade/assignment.toml", ".torchgrade/public.py"]
    damaged = {"not_base64": "not base64!", "no_config": packed((".torchgrade/public.py", "")),
               "file_and_folder": packed(config, (".torchgrade/a", ""), (".torchgrade/a/b", ""))}
    for name, text in damaged.items():
        with pytest.raises(BuildError, match="cannot be unpacked") as raised:
            unpack(notebook(text, name), tmp_path / name)
        assert raised.value.path == tmp_path / f"{name}.ipynb"
    (tmp_path / "binary.ipynb").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(BuildError, match="cannot be unpacked"):
        unpack(tmp_path / "binary.ipynb", tmp_path / "binary")
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), plain)
    assert unpack(plain, tmp_path / "out3") is None


def test_a_notebook_checked_alone_gets_only_what_is_handed_out_beside_it(tmp_path):
    """Its kernel's folder holds the assignment's student files and data/ from beside the notebook, linked, and
    nothing else of that folder; what is missing is named."""
    from autograder.build.embed import files_beside

    meta = tmp_path / "unpacked" / ".torchgrade"
    meta.mkdir(parents=True)
    (meta / "assignment.toml").write_text('name = "x"\ntitle = "X"\nnotebook = "x.ipynb"\nstudent_files = ["helpers.py", '
                                          '"extra/table.csv"]\ndata = ["mnist"]\n\n[[questions]]\nid = "q"\n'
                                          'points = 1\n')
    downloads = tmp_path / "downloads"
    (downloads / "extra").mkdir(parents=True)
    for name in ("x.ipynb", "helpers.py", "extra/table.csv", "unrelated.txt"):
        (downloads / name).write_text(name)
    files, missing = files_beside(meta, downloads / "x.ipynb", tmp_path / "unpacked")
    assert sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()) == [
        "extra/table.csv", "helpers.py"]
    assert (files / "helpers.py").read_text() == "helpers.py" and missing == ["data"]


def test_a_self_check_without_the_data_handed_out_says_what_is_missing(builds, tmp_path, capsys):
    """Found by a newcomer's trial: in a folder without the `data/` handed out with it, the notebook's self-check
    said nothing of it, and its data checks said "the grader could not run this check; it is left out of your score
    until your instructor has looked at it", where grading (which has the data) said "`mnist_mean` is not defined".
    Now `Grader()` says what is not beside the notebook; an undefined answer is said to be undefined first, with the
    data or without; and a defined one, which needs the data to be checked, says the data is missing."""
    import shutil

    from autograder.build.selfcheck import Grader

    student = tmp_path / "student"
    shutil.copytree(builds.build("stats").student_dir, student)
    shutil.rmtree(student / "data")
    grader = Grader(student, namespace={})
    assert "not beside the notebook: data (handed out with it" in capsys.readouterr().out
    assert grader.missing == ["data"]
    undefined = grader.check("mnist_stats").outcomes
    assert [o.status for o in undefined] == ["failed", "failed"]
    assert "`mnist_mean` is not defined" in undefined[0].message
    defined = Grader(student, namespace={"mnist_mean": 0.13, "mnist_std": 0.31}).check("mnist_stats").outcomes
    assert [(o.status, o.phase) for o in defined] == [("error", "data")] * 2
    assert "the MNIST train split it reads is not in data/" in defined[0].message


def test_check_all_ends_with_the_total_as_the_command_line_does(builds, tmp_path, capsys):
    """Found by a newcomer's trial: `torchgrade check` ends with "3 of 6 public checks passed", the notebook's
    `grader.check_all()` with the last question's checks, and no total."""
    import shutil

    from autograder.build.selfcheck import Grader

    student = tmp_path / "student"
    shutil.copytree(builds.build("stats").student_dir, student)
    import reference.stats as ref

    summary = Grader(student, namespace={"normalize": ref.normalize}).check_all()  # one question right
    outcomes = [o for r in summary.reports for o in r.outcomes]
    passed = sum(o.passed for o in outcomes)
    assert 0 < passed < len(outcomes)
    assert repr(summary).splitlines()[-1] == f"{passed} of {len(outcomes)} public checks passed"
    assert summary._repr_html_().endswith(f"{passed} of {len(outcomes)} public checks passed</p>")



def test_a_written_question_is_said_to_be_graded_by_a_person_in_the_self_check(builds, tmp_path):
    """Found by an instructor's trial: a written answer (kind = "manual") showed "why_max: 0/0 public checks
    passed ✔" in the self-check, as if something had been checked."""
    import dataclasses
    import shutil

    from autograder.build.selfcheck import Grader
    from autograder.config import Question

    student = tmp_path / "student"
    shutil.copytree(builds.build("stats").student_dir, student)
    grader = Grader(student, namespace={})
    config = grader.assignment.config
    grader.assignment = dataclasses.replace(grader.assignment, config=dataclasses.replace(
        config, questions=(*config.questions, Question("why_max", 2.0, "manual"))))
    report = grader.check("why_max")
    assert repr(report) == "why_max: a written answer, graded by your instructor (nothing to check here)"
    assert report.passed and report.outcomes == ()
