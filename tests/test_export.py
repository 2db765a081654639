"""`torchgrade export gradescope`: the zip, unpacked into a root laid out like Gradescope's, grades like `grade`.

`run_autograder` runs against a temporary root (`AUTOGRADER_ROOT`) with this test's interpreter
(`TORCHGRADE_PYTHON`): setup.sh's installs are skipped (this environment has everything), its syntax is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.build.assignment import load_assignment
from autograder.export.gradescope import export_gradescope
from conftest import ASSIGNMENTS, expected_points

pytestmark = pytest.mark.slow
EXAMPLES = ASSIGNMENTS / "convolution" / "examples"
TEST_KEYS = {"name", "score", "max_score", "status", "output", "visibility"}


@pytest.fixture(scope="module")
def autograder_zip(convolution_build, tmp_path_factory) -> Path:
    report = export_gradescope(convolution_build.autograder_dir, tmp_path_factory.mktemp("export") / "autograder.zip")
    assert report.name == "convolution" and report.time_limit == 600
    return report.zip_path


def gradescope_root(zip_path: Path, where: Path, submission: dict[str, Path | bytes]) -> Path:
    """`where` laid out as Gradescope lays out /autograder: the zip in source/, the files in submission/."""
    for folder in ("source", "submission", "results"):
        (where / folder).mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(where / "source")
    for name, content in submission.items():
        target = where / "submission" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_bytes(content)
    return where


def run_autograder(root: Path, **env: str) -> dict:
    environ = {**os.environ, "AUTOGRADER_ROOT": str(root), "TORCHGRADE_PYTHON": sys.executable, **env}
    proc = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=environ, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((root / "results" / "results.json").read_text())


def assert_results_schema(data: dict) -> None:
    assert set(data) >= {"score", "execution_time", "output", "tests"} and data["stdout_visibility"] == "hidden"
    assert data["tests"], data
    for test in data["tests"]:
        assert set(test) >= TEST_KEYS and test["status"] in ("passed", "failed"), test
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(data["score"], abs=0.01)
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(21, abs=0.01)
    assert "/" not in data["output"].split(":")[0]  # names the submission, not a path of the container


def test_zip_layout_and_scripts(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", "export", "gradescope", ASSIGNMENTS / "convolution",
                           "--out", tmp_path / "autograder.zip"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "exported convolution for Gradescope" in text and "above 10 minutes" in text
    with zipfile.ZipFile(tmp_path / "autograder.zip") as zf:
        names = set(zf.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in zf.infolist()}
    assert {"setup.sh", "run_autograder", "bundle/assignment.toml", "bundle/reference.py", "bundle/checks/hidden.py",
            "torchgrade/requirements.txt", "torchgrade/autograder/cli/parser.py",
            "torchgrade/autograder/export/gradescope_run.py"} <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert "bundle/solution.ipynb" not in names  # grading needs no model answer
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)

    root = gradescope_root(tmp_path / "autograder.zip", tmp_path / "root", {})
    assert load_assignment(root / "source" / "bundle").kind == "bundle"
    requirements = (root / "source" / "torchgrade" / "requirements.txt").read_text().split()
    assert any(r.startswith("torch>=") for r in requirements) and not any("pytest" in r for r in requirements)
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(root / "source" / script)], check=True)
    # sourcing setup.sh defines its steps without installing anything
    defined = subprocess.run(["bash", "-c", "source setup.sh && type -t make_venv install_torchgrade main"],
                             cwd=root / "source", capture_output=True, text=True,
                             env={**os.environ, "AUTOGRADER_ROOT": str(root)})
    assert defined.stdout.split() == ["function"] * 3, defined.stderr
    assert not (root / "torchgrade-venv").exists()


def test_solution_gets_full_marks(autograder_zip, convolution_build, tmp_path):
    root = gradescope_root(autograder_zip, tmp_path,
                           {"convolution.ipynb": convolution_build.autograder_dir / "solution.ipynb"})
    data = run_autograder(root)
    assert_results_schema(data)
    assert data["score"] == 21 and all(t["status"] == "passed" for t in data["tests"])
    assert data["output"].startswith("convolution: 21 / 21 points, status ok")
    visibilities = {t["visibility"] for t in data["tests"]}
    assert visibilities == {"visible", "after_published"}


def test_flawed_example_without_isolation(autograder_zip, tmp_path):
    """The fallback for containers without user namespaces: the same grade, unsandboxed."""
    root = gradescope_root(autograder_zip, tmp_path, {"nested/hw.ipynb": EXAMPLES / "flipped_kernel.ipynb"})
    data = run_autograder(root, TORCHGRADE_ISOLATION="none")
    assert_results_schema(data)
    assert data["score"] == sum(expected_points("convolution")["flipped_kernel"][q]
                                for q in ("conv2d_single", "conv2d", "max_pool2d", "sobel"))
    assert data["extra_data"]["isolation"] == "none" and data["extra_data"]["submission"] == "hw"
    assert any("flipped" in t["output"] for t in data["tests"] if t["status"] == "failed")


@pytest.mark.parametrize("files, words", [
    ({"convolution.ipynb": b""}, "status invalid (the file is empty)"),
    ({}, "no notebook (.ipynb) was submitted; submit your convolution.ipynb"),
    ({"notes.txt": b"hi"}, "no notebook (.ipynb) was submitted (the submission holds: notes.txt)"),
    ({"a.ipynb": b"{}", "b/c.ipynb": b"{}", ".ipynb_checkpoints/a-checkpoint.ipynb": b"{}"},
     "several notebooks were submitted (a.ipynb, b/c.ipynb); submit exactly one"),
])
def test_invalid_submissions_get_zero_and_a_reason(autograder_zip, tmp_path, files, words):
    data = run_autograder(gradescope_root(autograder_zip, tmp_path, files))
    assert_results_schema(data)
    assert data["score"] == 0 and words in data["output"]
    assert data["extra_data"]["status"] == "invalid"


def test_a_grader_that_cannot_start_still_writes_results(autograder_zip, tmp_path):
    root = gradescope_root(autograder_zip, tmp_path, {"convolution.ipynb": b""})
    data = run_autograder(root, TORCHGRADE_PYTHON=str(tmp_path / "no-python"))
    assert data["score"] == 0 and "autograder failed" in data["output"] and data["tests"] == []
    shutil.rmtree(root / "source" / "bundle")
    data = run_autograder(root)
    assert data["score"] == 0 and "autograder failed" in data["output"] and "ConfigError" in data["output"]
