"""A student's install: a fresh virtual environment with PyTorch alone runs the notebook's self-checks.

The student bundle ships the self-check in `.torchgrade/lib`, and the student notebook carries it too (a packed
first cell, `build/embed.py`), so a student installs nothing of torchgrade; this builds a fresh venv (no system
packages, no torchgrade), installs the PyTorch the grader uses and numpy, and runs the demo's student notebook,
answered and not, as a plain script would: in the student folder, and alone in an empty folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow

RUN_CELLS = """
import json, sys
nb = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for cell in nb["cells"]:
    if cell["cell_type"] == "code":
        lines = "".join(cell["source"]).splitlines()
        try:  # like running the cells one by one in Jupyter: a failing cell shows its error, the next runs
            exec("\\n".join(l for l in lines if not l.lstrip().startswith(("%", "!"))), ns)
        except Exception as exc:
            print(f"cell error: {exc!r}")
print(ns["grader"].check_all())
"""

RUN_ALL = """
import ast, json, sys
nb = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for cell in nb["cells"]:  # like Jupyter's Run All: the first error stops the run; a last expression is shown
    if cell["cell_type"] == "code":
        tree = ast.parse("".join(cell["source"]))
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "cell", "exec"), ns)
        if last is not None and (value := eval(compile(ast.Expression(last.value), "cell", "eval"), ns)) is not None:
            print(repr(value))
"""


def run(*args, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the grader's environment
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("student") / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=venv.parent).check_returncode()
    return venv


def test_a_student_without_pytorch_is_told_the_install_command(fresh_venv, convolution_build, tmp_path):
    student = shutil.copytree(convolution_build.student_dir, tmp_path / "student")
    setup = next(c for c in json.loads((student / "convolution.ipynb").read_text())["cells"]
                 if "grader = Grader()" in "".join(c["source"]))
    proc = run(fresh_venv / "bin" / "python", "-c", "".join(setup["source"]), cwd=student)
    assert proc.returncode != 0
    assert "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in proc.stderr


def test_self_checks_run_with_pytorch_alone(fresh_venv, convolution_build, tmp_path):
    python = fresh_venv / "bin" / "python"
    version = torch.__version__.split("+")[0]
    proc = run(python, "-m", "pip", "install", "--quiet", f"torch=={version}", "numpy", cwd=tmp_path)
    if proc.returncode != 0:
        pytest.skip(f"cannot install torch=={version} into a fresh venv here: {proc.stderr[-500:]}")
    assert run(python, "-c", "import autograder", cwd=tmp_path).returncode != 0  # torchgrade itself is not installed
    student = shutil.copytree(convolution_build.student_dir, tmp_path / "student")
    script = tmp_path / "run_cells.py"
    script.write_text(RUN_CELLS)
    shutil.copy(convolution_build.autograder_dir / "solution.ipynb", student / "answered.ipynb")
    answered = run(python, script, "answered.ipynb", cwd=student)
    assert answered.returncode == 0, answered.stderr[-2000:]
    for question in ("conv2d_single", "conv2d", "max_pool2d", "sobel"):
        assert f"{question}: " in answered.stdout and "public checks passed ✔" in answered.stdout
    assert "✘" not in answered.stdout
    blank = run(python, script, "convolution.ipynb", cwd=student)  # unanswered: checks fail, nothing crashes
    assert blank.returncode == 0, blank.stderr[-2000:]
    assert "conv2d_single: 0/" in blank.stdout and "sobel: 0/2 public checks passed" in blank.stdout


def test_the_notebook_alone_self_checks_with_pytorch_alone(fresh_venv, convolution_build, tmp_path):
    """Only the .ipynb, in an empty folder (an upload to Colab, an LMS that hands out the notebook alone): Run All
    reaches `grader.check_all()`, answered or not."""
    python = fresh_venv / "bin" / "python"
    version = torch.__version__.split("+")[0]
    proc = run(python, "-m", "pip", "install", "--quiet", f"torch=={version}", "numpy", cwd=tmp_path)
    if proc.returncode != 0:
        pytest.skip(f"cannot install torch=={version} into a fresh venv here: {proc.stderr[-500:]}")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(convolution_build.student_dir / "convolution.ipynb", alone)
    shutil.copy(convolution_build.autograder_dir / "solution.ipynb", alone / "answered.ipynb")
    script = tmp_path / "run_all.py"
    script.write_text(RUN_ALL)
    answered = run(python, script, "answered.ipynb", cwd=alone)
    assert answered.returncode == 0, answered.stderr[-2000:]
    for question in ("conv2d_single", "conv2d", "max_pool2d", "sobel"):
        assert f"{question}: " in answered.stdout and "public checks passed ✔" in answered.stdout
    assert "✘" not in answered.stdout
    blank = run(python, script, "convolution.ipynb", cwd=alone)  # unfinished: Run All still reaches the end
    assert blank.returncode == 0, blank.stderr[-2000:]
    assert "edge_magnitude is not finished yet" in blank.stdout
    assert "conv2d_single: 0/" in blank.stdout and "sobel: 0/2 public checks passed" in blank.stdout
    assert sorted(p.name for p in alone.iterdir()) == ["answered.ipynb", "convolution.ipynb"]  # nothing unpacked here
