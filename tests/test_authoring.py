"""Writing an assignment outside this repository: `new` scaffolds one, `validate` proves it or names the fault.

An instructor's path (docs/authoring.md): `torchgrade new`, edit, `torchgrade validate`, `torchgrade export`.
Each trap an instructor met while writing a first assignment has a test here in which `validate` refuses it,
naming the file, check or example at fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from autograder.build.notebook import Master
from autograder.build.scaffold import scaffold
from autograder.cli.parser import main
from autograder.config import AssignmentConfig
from autograder.errors import BuildError, ConfigError
from autograder.export.gradescope import export_gradescope
from autograder.grading.validate import validate

REPO = Path(__file__).resolve().parent.parent


def problems_text(report) -> str:
    return "\n".join(str(p) for p in report.problems)


# ----------------------------------------------------------------------------- editing a scaffold, as a test would

def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r}"
    path.write_text(text.replace(old, new))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + textwrap.dedent(text))


def edit_answer(notebook: Path, old: str, new: str) -> None:
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if old in c.source)
    cell.source = cell.source.replace(old, new)
    nbformat.write(nb, notebook)


SOFTMAX_CELLS = [
    ("raw", "# BEGIN QUESTION\nname: softmax"),
    ("markdown", "## Question 2: `softmax` (2 points)\n\nWrite `softmax(x)` along the last dimension, without "
                 "`torch.softmax`."),
    ("code", "def softmax(x):\n    # BEGIN SOLUTION\n    e = (x - x.amax(dim=-1, keepdim=True)).exp()\n"
             "    return e / e.sum(dim=-1, keepdim=True)\n    # END SOLUTION"),
    ("raw", "# END QUESTION"),
]


def add_softmax_question(folder: Path) -> None:
    """A second question, as the walk-through in docs/authoring.md adds it: toml, notebook, reference, checks,
    examples."""
    append(folder / "assignment.toml", """
        [[questions]]
        id = "softmax"
        points = 2
        """)
    master = folder / f"{folder.name}.ipynb"
    nb = nbformat.read(master, as_version=4)
    end = max(i for i, c in enumerate(nb.cells) if c.source == "# END QUESTION")
    new = {"raw": nbformat.v4.new_raw_cell, "markdown": nbformat.v4.new_markdown_cell,
           "code": nbformat.v4.new_code_cell}
    nb.cells[end + 1:end + 1] = [new[kind](source) for kind, source in SOFTMAX_CELLS]
    nbformat.write(nb, master)
    append(folder / "reference.py", """

        def softmax(x):
            return torch.softmax(x, dim=-1)
        """)
    append(folder / "checks" / "public.py", """

        @checks.public("softmax")
        def softmax_rows(st, ref, rng):
            \"\"\"Two rows of four logits.\"\"\"
            x = randn(rng, 2, 4)
            call = student_call(st, "softmax", x, probe={"forbid": Forbid(ops=("_softmax",))})
            return close(call, ref.softmax(x), rtol=1e-5, atol=1e-6, device=st.device)
        """)
    append(folder / "checks" / "hidden.py", """

        @checks.hidden("softmax")
        def softmax_large_logits(st, ref, rng):
            \"\"\"Large logits, where exp overflows unless the maximum is subtracted first.\"\"\"
            from autograder.checks import close, student_call
            x = randn(rng, 3, 5) * 100
            return close(student_call(st, "softmax", x), ref.softmax(x), rtol=1e-5, atol=1e-6, device=st.device)
        """)
    expected = folder / "examples" / "expected.toml"
    edit(expected, "relu = 4\n", "relu = 4\nsoftmax = 2\n")
    edit(expected, "[blank]\nrelu = 0\n", "[blank]\nrelu = 0\nsoftmax = 0\n")
    edit(expected, "[abs_instead]  # relu returns x.abs(): every relu check fails, and says why\nrelu = 0\n",
         "[abs_instead]\nrelu = 0\nsoftmax = 0  # this example predates the question: softmax is not defined\n")


# ----------------------------------------------------------------------------- new

def test_new_refuses_a_bad_name_and_a_folder_in_use(tmp_path):
    with pytest.raises(ConfigError, match="not a valid assignment name"):
        scaffold("my-assignment", tmp_path / "x")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        scaffold("used", tmp_path / "used")


def test_new_writes_every_file_with_comments_saying_what_to_change(tmp_path):
    folder = scaffold("activations", tmp_path / "activations")
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == {"assignment.toml", "activations.ipynb", "reference.py", "checks/__init__.py",
                     "checks/public.py", "checks/hidden.py", "examples/expected.toml", "examples/abs_instead.ipynb"}
    assert AssignmentConfig.load(folder / "assignment.toml").question_ids == ["relu"]
    for rel in ("assignment.toml", "checks/public.py", "checks/hidden.py", "examples/expected.toml", "reference.py"):
        assert "docs/" in (folder / rel).read_text(), rel
    master = json.loads((folder / "activations.ipynb").read_text())
    sources = ["".join(c["source"]) for c in master["cells"]]
    assert "# BEGIN QUESTION\nname: relu" in sources and "Instructors:" in sources[0]


def test_instructors_notes_in_html_comments_never_reach_the_student_notebook(tmp_path):
    """The scaffold's intro is an HTML comment for instructors: hidden when rendered, but in the student notebook's
    source it would still be there to read. The student notebook leaves every such comment out, except as code."""
    folder = scaffold("notes", tmp_path / "notes")
    master = nbformat.read(folder / "notes.ipynb", as_version=4)
    master.cells.insert(1, nbformat.v4.new_markdown_cell(
        "<!-- the hidden test uses a 7×7 kernel -->\nWrite HTML comments as `<!-- ... -->`:\n\n"
        "```html\n<!-- a comment -->\n```\n<!-- grader: half marks\nfor a loop -->"))
    master.cells.insert(2, nbformat.v4.new_markdown_cell("<!-- only a note -->"))
    nbformat.write(master, folder / "notes.ipynb")
    student = Master.read(folder / "notes.ipynb").student()
    text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert "Instructors:" not in text and "7×7" not in text and "half marks" not in text and "only a note" not in text
    assert "Write HTML comments as `<!-- ... -->`:" in text and "```html\n<!-- a comment -->\n```" in text
    assert student.cells[0].source.startswith("# Notes") and len(student.cells) == len(
        Master.read(folder / "notes.ipynb").solution().cells) - 1  # the cell of nothing but a note is gone
    solution = "\n".join(c.source for c in Master.read(folder / "notes.ipynb").solution().cells)
    assert "Instructors:" in solution and "half marks" in solution  # the instructors' own copy keeps them


@pytest.mark.slow
def test_new_then_a_second_question_validates_and_self_checks_alone(tmp_path):
    """The walk-through: scaffold, add a question everywhere it goes, validate; the built notebook alone
    self-checks (in this interpreter, the packed files are what it loads)."""
    assert main(["new", "softmaxes", "--out", str(tmp_path / "softmaxes")]) == 0
    folder = tmp_path / "softmaxes"
    assert validate(folder).ok  # untouched
    add_softmax_question(folder)
    report = validate(folder, tmp_path / "dist")
    assert report.ok, problems_text(report)
    assert {q.id: q.points for q in report.results["solution"].questions} == {"relu": 4, "softmax": 2}
    student_nb = tmp_path / "dist" / "student" / "softmaxes.ipynb"
    sources = ["".join(c["source"]) for c in json.loads(student_nb.read_text())["cells"]]
    assert 'grader.check("softmax")' in sources
    export = export_gradescope(folder, tmp_path / "autograder.zip")
    assert export.name == "softmaxes" and export.zip_path.is_file()


# ----------------------------------------------------------------------------- validate refuses each trap

ANSWER_DEPENDENT_REF_ON_BLANK = """

    @checks.public("relu")
    def relu_explained(st, ref, rng):
        \"\"\"A row of four values; an unanswered relu is explained with another reference value.\"\"\"
        x = randn(rng, 4)
        call = student_call(st, "relu", x)
        if call.value is None:
            ref.relu(x * 2)  # only a missing answer asks for this: never recorded from the solution
        return close(call, ref.relu(x), rtol=1e-6, atol=1e-6)
    """

ANSWER_DEPENDENT_REF_ON_EXAMPLE = """

    @checks.public("relu")
    def relu_of_the_answer(st, ref, rng):
        \"\"\"A row of four values; one particular wrong answer is explained with another reference value.\"\"\"
        x = randn(rng, 4)
        call = student_call(st, "relu", x)
        if call.value is not None and torch.equal(call.value, x.abs()):
            ref.relu(-x)  # only the abs mistake asks for this: the example makes it, the build never did
        return close(call, ref.relu(x), rtol=1e-6, atol=1e-6)
    """


def trap_ref_on_blank(folder: Path) -> tuple[str, ...]:
    append(folder / "checks" / "public.py", ANSWER_DEPENDENT_REF_ON_BLANK)
    return "on the blank notebook", "relu/relu_explained", "ref.relu(...) was not recorded"


def trap_ref_on_example(folder: Path) -> tuple[str, ...]:
    append(folder / "checks" / "public.py", "\nimport torch\n" + textwrap.dedent(ANSWER_DEPENDENT_REF_ON_EXAMPLE))
    return "abs_instead.ipynb", "relu/relu_of_the_answer", "ref.relu(...) was not recorded"


ANSWER_DEPENDENT_REF_NO_EXAMPLE_MAKES = """

    @checks.public("relu")
    def relu_explained_when_wrong(st, ref, rng):
        \"\"\"A row of four values; a wrong answer (that no example gives) is explained with another reference value.\"\"\"
        x = randn(rng, 4)
        call = student_call(st, "relu", x)
        verdict = close(call, ref.relu(x), rtol=1e-6, atol=1e-6)
        if not verdict.passed and call.value is not None and not torch.equal(call.value, x.abs()):
            ref.relu(2 * x)  # neither the blank (None) nor the example (abs) asks for it; a wrong answer does
        return verdict
    """


def trap_ref_no_example_makes(folder: Path) -> tuple[str, ...]:
    append(folder / "checks" / "public.py", "\nimport torch\n" + textwrap.dedent(ANSWER_DEPENDENT_REF_NO_EXAMPLE_MAKES))
    return "on wrong answers", "relu/relu_explained_when_wrong", "ref.relu(...) was not recorded"


def trap_answer_outside_markers(folder: Path) -> tuple[str, ...]:
    edit_answer(folder / f"{folder.name}.ipynb", "    # BEGIN SOLUTION\n", "")
    edit_answer(folder / f"{folder.name}.ipynb", "\n    # END SOLUTION", "")
    return "a model answer is outside `# BEGIN SOLUTION`", "  question relu:\n    [PASS] relu_small"


def trap_wrong_expected_points(folder: Path) -> tuple[str, ...]:
    edit(folder / "examples" / "expected.toml", "[abs_instead]  # relu returns x.abs(): every relu check fails, "
         "and says why\nrelu = 0", "[abs_instead]\nrelu = 1")
    return "examples/abs_instead.ipynb", "relu scores 0, expected 1"


def trap_wrong_diagnosis(folder: Path) -> tuple[str, ...]:
    edit(folder / "examples" / "expected.toml", '"absolute value instead of ReLU"', '"sign flipped"')
    return "examples/abs_instead.ipynb", "does not say 'sign flipped'"


def trap_example_without_entry(folder: Path) -> tuple[str, ...]:
    (folder / "examples" / "late.ipynb").write_text((folder / "examples" / "abs_instead.ipynb").read_text())
    return "expected.toml", "example late.ipynb has no [late] table"


FIGURE_THAT_RAISES = """
from autograder.checks.figures import FigureSet, Panel, image_row

figures = FigureSet()


@figures.figure("relu", "Your relu on a row of four")
def relu_row(st, ref, rng):
    call = st.call("relu", torch.zeros(4))
    return image_row([Panel(call.value, "yours")])  # a 1-D tensor: image_row draws 2-D ones
"""


def trap_figure_that_raises(folder: Path) -> tuple[str, ...]:
    (folder / "checks" / "figures.py").write_text("import torch\n" + FIGURE_THAT_RAISES)
    return "checks/figures.py", "figure relu_row (relu) is not drawn for the solution"


TRAPS = [trap_ref_on_blank, trap_ref_on_example, trap_ref_no_example_makes, trap_answer_outside_markers, trap_wrong_expected_points,
         trap_wrong_diagnosis, trap_example_without_entry, trap_figure_that_raises]


@pytest.mark.slow
@pytest.mark.parametrize("trap", TRAPS, ids=[t.__name__ for t in TRAPS])
def test_validate_refuses(trap, tmp_path, capsys):
    folder = scaffold("traps", tmp_path / "traps")
    words = trap(folder)
    assert main(["validate", str(folder)]) == 1
    out = " ".join(capsys.readouterr().out.split())  # the terminal may wrap long lines
    for word in words:
        assert " ".join(word.split()) in out, out


@pytest.mark.slow
def test_export_runs_the_proof_and_refuses_what_assign_refuses(tmp_path):
    folder = scaffold("leaky", tmp_path / "leaky")
    trap_answer_outside_markers(folder)
    with pytest.raises(BuildError, match="blank notebook scores above zero"):
        export_gradescope(folder, tmp_path / "autograder.zip")
    assert not (tmp_path / "autograder.zip").exists()


def test_a_misspelt_key_lists_the_valid_keys(tmp_path, capsys):
    folder = scaffold("typo", tmp_path / "typo")
    edit(folder / "assignment.toml", "cell_timeout = 60", "timeout = 60")
    assert main(["validate", str(folder)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "[limits] unknown key 'timeout'; valid keys: cell_timeout, notebook_timeout" in out


def test_a_question_missing_from_the_notebook_is_named(tmp_path):
    from autograder.build.bundles import build_bundles

    folder = scaffold("questions", tmp_path / "questions")
    append(folder / "assignment.toml", '\n[[questions]]\nid = "softmax"\npoints = 2\n')
    append(folder / "checks" / "public.py", '\n\n@checks.public("softmax")\ndef s(st, ref, rng):\n    """."""\n')
    with pytest.raises(ConfigError, match="'softmax' is in assignment.toml but no BEGIN QUESTION cell names it"):
        build_bundles(folder, tmp_path / "out")


def test_ops_prints_the_aten_operators_of_a_call():
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", "ops", "F.cross_entropy(x[:, :, 0, 0], y)"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert {"_log_softmax", "nll_loss_forward"} <= set(proc.stdout.split())


def test_ops_takes_inputs_of_other_shapes_from_a_setup_left_unrecorded():
    """A 1-D question's operators: the input is made by `--setup`, so `randn` and `normal_` are not listed as
    operators of the call."""
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", "ops", "--setup", "s = torch.randn(10)",
                           "F.avg_pool1d(s[None], 3, 1)"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "avg_pool1d" in proc.stdout.split() and not {"randn", "normal_"} & set(proc.stdout.split())


# ----------------------------------------------------------------------------- the shipped assignments' contracts

def square_only_pool(x, kernel_size, stride=None):
    """A max_pool2d that reads only the first number of a pair (kernel and stride): right for ints alone."""
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    s = k if stride is None else (stride if isinstance(stride, int) else stride[0])
    return x.unfold(2, k, s).unfold(3, k, s).amax(dim=(-2, -1))


def pair_pool(x, kernel_size, stride=None):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    sh, sw = (kh, kw) if stride is None else (stride, stride) if isinstance(stride, int) else stride
    return x.unfold(2, kh, sh).unfold(3, kw, sw).amax(dim=(-2, -1))


def test_max_pool2d_public_check_catches_a_pairs_bug():
    """The contract allows int or pair kernel_size and stride: the self-check tries a pair, so a pairs bug is seen
    before grading."""
    from autograder.build.assignment import load_assignment
    from autograder.checks import run_check
    from autograder.kernel.probe import LocalStudent

    source = load_assignment(REPO / "assignments" / "convolution")
    public = [c for c in source.checks.for_question("max_pool2d") if c.public]
    outcomes = [run_check(c, LocalStudent({"max_pool2d": square_only_pool}), source.reference, source.config.seed)
                for c in public]
    assert not all(o.passed for o in outcomes), [o.message for o in outcomes]
    correct = [run_check(c, LocalStudent({"max_pool2d": pair_pool}), source.reference, source.config.seed)
               for c in public]
    assert all(o.passed for o in correct), [o.message for o in correct]


# ----------------------------------------------------------------------------- the authors' docs stay current

def test_the_check_library_reference_is_current():
    from autograder.checks.docs import render

    page = REPO / "docs" / "check-library.md"
    assert page.read_text() == render(), \
        "docs/check-library.md is stale: run `python -m autograder.checks.docs > docs/check-library.md`"


def test_every_public_name_of_the_check_library_is_in_its_reference():
    import autograder.checks

    page = (REPO / "docs" / "check-library.md").read_text()
    assert not [name for name in autograder.checks.__all__ if f"### `{name}`" not in page]


def test_every_assignment_toml_key_is_documented_with_its_default():
    from dataclasses import MISSING, fields

    from autograder.config import AssignmentConfig, Late, Limits, Question, Threshold

    page = (REPO / "docs" / "assignment-toml.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| `")}
    for kind in (AssignmentConfig, Limits, Question, Threshold, Late):
        for f in fields(kind):
            assert f"`{f.name}`" in rows, f"{kind.__name__}.{f.name} is not in docs/assignment-toml.md"
            if f.default is not MISSING and f.default is not None and f.default != ():
                assert f"`{f.default!r}`".replace("'", '"') in rows[f"`{f.name}`"], (kind.__name__, f.name)


def test_the_readme_links_the_authors_docs_and_its_check_example_runs_as_written():
    readme = (REPO / "README.md").read_text()
    for page in ("docs/authoring.md", "docs/assignment-toml.md", "docs/expected-toml.md", "docs/check-library.md"):
        assert f"({page})" in readme and (REPO / page).is_file()
    assert "forbid=LIBRARY)" not in readme  # st.call has no such argument: student_call(..., probe={"forbid": ...})
    example = readme.split("A check is a function", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(example, namespace)
    from autograder.build.assignment import load_assignment
    from autograder.checks import run_check
    from autograder.kernel.probe import LocalStudent

    def conv2d(x, weight, bias=None):
        windows = x.unfold(2, weight.shape[2], 1).unfold(3, weight.shape[3], 1)
        return __import__("torch").einsum("nchwij,ocij->nohw", windows, weight) + bias[:, None, None]

    reference = load_assignment(REPO / "assignments" / "convolution").reference
    check = namespace["checks"].checks[0]
    assert run_check(check, LocalStudent({"conv2d": conv2d}), reference, 0).passed
    flipped = run_check(check, LocalStudent({"conv2d": lambda x, w, bias=None: conv2d(x, w.flip(2, 3), bias)}),
                        reference, 0)
    assert not flipped.passed and "flipped kernel" in flipped.message + flipped.hint


def test_a_written_question_has_no_points_in_expected_toml(tmp_path):
    """Found by an instructor's trial: a written answer (kind = "manual") had to be given 0 in every example of
    expected.toml, though it is pending until a person grades it, and validate's summary counted it as 0."""
    from autograder.config import Question
    from autograder.grading.validate import ValidationReport, example_problems, expected_problems, summary_lines
    from autograder.outcomes import SubmissionResult

    config = AssignmentConfig("act", "Act", "act.ipynb", (Question("relu", 4.0), Question("why_max", 2.0, "manual")))
    path = tmp_path / "expected.toml"
    fine = {"solution": {"relu": 4}, "blank": {"relu": 0}}
    assert expected_problems(fine, {}, config, path) == []
    given = {"solution": {"relu": 4, "why_max": 0}, "blank": {"relu": 0, "why_max": 0}}  # as it once had to say
    assert expected_problems(given, {}, config, path) == []  # pending in every example: ignored
    wrong = expected_problems({"solution": {"relu": 4, "why": 2, "diagnoses": {"why_max": "x"}}, "blank": {"relu": 0}},
                              {}, config, path)
    assert [p.message for p in wrong] == [
        "[solution] why: no such question (questions: relu, why_max)",
        "[solution.diagnoses] why_max: a written answer, graded by a person: no check's feedback to diagnose"]
    solution = SubmissionResult.ungraded_row("solution", "ok", "", config.questions, "s.ipynb")
    solution.questions[0].points = 4.0
    assert example_problems(solution, {"relu": 4, "why_max": 2}) == []  # pending, never compared
    report = ValidationReport("act", results={"solution": solution})
    assert summary_lines(report) == ["  solution: 4/4 (relu 4, why_max written, for a person to grade)"]
