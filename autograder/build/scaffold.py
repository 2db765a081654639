"""`torchgrade new NAME`: a working one-question assignment to edit into one's own.

It writes what `assign` needs and what `validate` proves: `assignment.toml`, the master notebook `<NAME>.ipynb`
(otter's marker format), `reference.py`, `checks/public.py` and `checks/hidden.py`, and `examples/` with
`expected.toml` and one flawed example. Every file says, in comments, what to change. `assign` and `validate`
succeed on it untouched (tests/test_authoring.py). The walk-through is docs/authoring.md.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..config import CONFIG_NAME
from ..errors import ConfigError
from .notebook import Master, write_notebook

ASSIGNMENT_TOML = '''\
# {name}: the assignment's configuration. Every key: docs/assignment-toml.md.
name = "{name}"                      # the assignment's id (bundle names, gradebook titles)
title = "{title}"                    # shown to students
notebook = "{name}.ipynb"            # the master notebook, in this folder
reference = "reference.py"           # the reference oracle the checks compare against (never shipped to students)
seed = 0                             # seeds the public checks' inputs (and the student's kernel)
hidden_seed = {hidden_seed}          # seeds the hidden checks' inputs: change it, keep it secret

[limits]                             # per submission; every key and its default: docs/assignment-toml.md
cell_timeout = 60                    # seconds per cell
notebook_timeout = 300               # seconds for the whole notebook

# One [[questions]] table per question, in the notebook's order: `id` is the name in the notebook's
# `# BEGIN QUESTION` cell and the gradebook's column; `points` its weight. Add a question here AND in the notebook.
[[questions]]
id = "relu"
points = 4
'''

REFERENCE = '''\
"""The reference oracle of {name}: what the checks compare student answers with.

It stays with the grader: students get only the values it returned for the public checks' inputs, recorded at
assign time. Prefer trusted library calls (torch.relu) over a copy of the model answer. Add one function per
answer the checks need; a function `prepare(hidden, data)` may build grader-only files (docs/authoring.md).
"""

import torch


def relu(x):
    return torch.relu(x)
'''

CHECKS_INIT = '"""The checks of {name}: public.py (students run them too) and hidden.py (the grader only)."""\n'

PUBLIC = '''\
"""Public checks of {name}: students run these in their notebook (`grader.check("relu")`), and the grader too.

`assign` runs them on the solution against reference.py and records every value `ref` returned; a student's
self-check replays those values. So a public check must (docs/authoring.md, "Rules for public checks"):
- build its inputs from `rng` or constants only, and call `ref` on those inputs only, before and whatever the
  student's answer (a `ref` call that depends on the answer cannot be replayed; `validate` refuses it by name);
- say in its docstring's first line what case it tries (students see it).
Every question needs at least one public check. Replace `relu` with your questions' checks.
"""

from autograder.checks import CheckSet, Forbid, Misconception, close, randn, student_call

checks = CheckSet()

# Library functions the answer may not call, as aten operator name fragments: find them with
# `torchgrade ops "torch.relu(x)"` (prints relu). Delete `probe=...` below to allow everything.
NO_LIBRARY = Forbid(ops=("relu", "clamp", "threshold", "hardtanh"))
ABSOLUTE = "ReLU sets negative values to 0; it does not flip their sign (that is abs)."


def relu_case(st, ref, x):
    """The student's relu(x) against the reference's, with one known mistake recognised."""
    expected = ref.relu(x)  # the inputs are the check's own: recorded at assign time, replayed in the self-check
    mistakes = [Misconception("absolute value instead of ReLU", ABSOLUTE, x.abs())]
    call = student_call(st, "relu", x, probe={{"forbid": NO_LIBRARY}})
    return close(call, expected, rtol=1e-6, atol=1e-6, misconceptions=mistakes, device=st.device)


@checks.public("relu")
def relu_small(st, ref, rng):
    """A 3×4 tensor of positive and negative values."""
    return relu_case(st, ref, randn(rng, 3, 4))
'''

HIDDEN = '''\
"""Hidden checks of {name}: only the grader runs them, on inputs students never see (seeded by `hidden_seed`).

The first line of each docstring is all students see of a hidden check: describe the case, not its values.
Replace `relu` with your questions' hidden checks; they may reuse public.py's helpers (docs/authoring.md).
"""

import torch

from autograder.checks import CheckSet, randn

from .public import relu_case

checks = CheckSet()


@checks.hidden("relu", weight=2)  # weight: this check counts twice as much as a weight-1 check of the question
def relu_batch_with_zeros(st, ref, rng):
    """A batch of images with exact zeros among the values."""
    x = randn(rng, 2, 3, 5, 5)
    x[0, 0, 0] = torch.zeros(5)
    return relu_case(st, ref, x)
'''

EXPECTED = '''\
# The points each example must score per question; `torchgrade validate` grades every example and compares.
# `solution` and `blank` are the notebooks `assign` builds from the master notebook; every other table is a
# notebook in this folder (its file name without .ipynb). [<example>.diagnoses] lists words the feedback of a
# question must contain, so an example loses its points for the right reason. Format: docs/expected-toml.md.
# Add a flawed example for each mistake you expect students to make.

[solution]
relu = 4

[blank]
relu = 0

[abs_instead]  # relu returns x.abs(): every relu check fails, and says why
relu = 0

[abs_instead.diagnoses]
relu = "absolute value instead of ReLU"
'''

INTRO = '''\
# {title}

<!-- Instructors: this is the master notebook. Students get it without the model answers (the lines between
`# BEGIN SOLUTION` and `# END SOLUTION`, and lines ending in `# SOLUTION`, become `...`), with a
`grader.check("<question>")` cell after each question. A question is the cells between a raw cell
`# BEGIN QUESTION` (with `name: <id>` below it, an id of assignment.toml) and a raw cell `# END QUESTION`.
Replace this text with your introduction. (HTML comments like this one are notes for you: the student notebook
leaves them out.) -->

Run the cells in order. After each question, `grader.check(...)` runs its public checks on your answer; the
last cell runs them all. Hidden checks run when your notebook is graded.'''

PROMPT = '''\
## Question 1: `relu` (4 points)

Write `relu(x) -> Tensor`: the rectified linear unit, `max(x, 0)` for each element of a tensor of any shape, with
the input's dtype and device. `torch.relu`, `F.relu` and `clamp` are not allowed: use a comparison and
`torch.where`, or a mask.'''

ANSWER = '''\
def relu(x):
    """max(x, 0), elementwise."""
    # BEGIN SOLUTION
    return torch.where(x > 0, x, torch.zeros_like(x))
    # END SOLUTION'''

TRY_IT = '''\
# Try your answer (not graded). If it is not finished yet, this says so and Run All goes on to the self-checks.
try:
    print(relu(torch.tensor([-2.0, 0.0, 3.0])))
except Exception as exc:
    print(f"relu is not finished yet ({type(exc).__name__}: {exc})")'''

FLAWED_ANSWER = '''\
def relu(x):
    """max(x, 0), elementwise."""
    return x.abs()'''


def scaffold(name: str, out: Path | None = None) -> Path:
    """Write the assignment `name` into `out` (default ./name); returns the folder."""
    if not name.isidentifier():
        raise ConfigError(f"{name!r} is not a valid assignment name: use letters, digits and underscores, not "
                          "starting with a digit (it names Python modules)")
    folder = Path(out) if out else Path(name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError("already exists and is not an empty folder: choose another --out", folder)
    title = name.replace("_", " ").capitalize()
    values = {"name": name, "title": title, "hidden_seed": 1000 + sum(map(ord, name)) * 7919 % 900000}
    files = {CONFIG_NAME: ASSIGNMENT_TOML, "reference.py": REFERENCE, "checks/__init__.py": CHECKS_INIT,
             "checks/public.py": PUBLIC, "checks/hidden.py": HIDDEN, "examples/expected.toml": EXPECTED}
    for rel, template in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(template.format(**values))
    master = master_notebook(title)
    write_notebook(master, folder / f"{name}.ipynb")
    write_notebook(flawed_example(folder / f"{name}.ipynb"), folder / "examples" / "abs_instead.ipynb")
    return folder


def master_notebook(title: str) -> nbformat.NotebookNode:
    """One question in otter's marker format, between an introduction and an ungraded cell."""
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell(INTRO.format(title=title)),
        v4.new_code_cell("import torch"),
        v4.new_raw_cell("# BEGIN QUESTION\nname: relu"),
        v4.new_markdown_cell(PROMPT),
        v4.new_code_cell(ANSWER),
        v4.new_raw_cell("# END QUESTION"),
        v4.new_code_cell(TRY_IT),
    ])
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    return nb


def flawed_example(master: Path) -> nbformat.NotebookNode:
    """A student's notebook (the student version, answered) whose relu returns x.abs()."""
    nb = Master.read(master).student()
    answer = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("def relu("))
    answer.source = FLAWED_ANSWER
    return nb
