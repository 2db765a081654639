"""benchmarks/gpu_runner.py: its comparisons and rules without kernels, and its CPU dry run end to end."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest

from autograder.checks import Outcome
from autograder.config import Threshold
from autograder.outcomes import QuestionScore, SubmissionResult
from conftest import ASSIGNMENTS, REPO

spec = importlib.util.spec_from_file_location("gpu_runner", REPO / "benchmarks" / "gpu_runner.py")
gpu_runner = sys.modules["gpu_runner"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(gpu_runner)


def result(name: str, points: dict[str, float], messages: dict[str, str] | None = None, **extra) -> SubmissionResult:
    messages = messages or {}
    questions = [QuestionScore(q, p, 5.0, [Outcome(f"{q}_check", q, False, 1.0, p / 5, messages.get(q, ""),
                                                   status="passed" if p == 5 else "failed")])
                 for q, p in points.items()]
    return SubmissionResult(name, extra.pop("status", "ok"), questions, **extra)


def test_every_difference_from_expected_toml_is_a_mismatch():
    expected = {"solution": {"a": 5, "b": 5}, "flawed": {"a": 0, "b": 5, "diagnoses": {"a": "transposed"}},
                "missing": {"a": 0, "b": 0}}
    got = {"solution": result("solution", {"a": 5, "b": 5}, device="cuda"),
           "flawed": result("flawed", {"a": 2.5, "b": 5}, {"a": "off by one"}, device="cpu",
                            flags=[{"kind": "grader-patched", "origin": "source", "detail": ""}])}
    problems = gpu_runner.compare_examples(expected, got, "cuda")
    assert problems[0] == "flawed: flagged grader-patched"
    assert problems[1] == "flawed: graded on cpu, not cuda"
    assert problems[2].startswith("flawed: a 2.5 points, expected 0 (a_check: off by one)")
    assert problems[3] == "flawed: a feedback lacks 'transposed'"
    assert problems[4] == "missing: not graded"
    assert len(problems) == 5
    assert gpu_runner.compare_examples({"solution": {"a": 5, "b": 5}}, got, "cuda") == []


def test_measures_are_read_from_the_checks_messages_and_tables_suggested():
    graded = result("seed_0", {"mlp_accuracy": 5, "samples": 5}, {
        "mlp_accuracy": "accuracy on the hidden test split: 0.9380 (full credit from 0.9, partial from 0.8)",
        "samples": "512 samples of G: inception-style score 4.56 (full credit from 3.6, partial from 1.8); "
                   "entropy of the predicted digits 2.10 (full credit from 1.67, partial from 0.84; ln 10 = 2.30)."})
    assert gpu_runner.measures(graded) == [
        ("mlp_accuracy", "accuracy", "mlp_accuracy/mlp_accuracy_check (hidden test)", 0.938),
        ("gan_inception", "score", "samples/samples_check (hidden)", 4.56),
        ("gan_entropy", "score", "samples/samples_check (hidden)", 2.10)]
    assert gpu_runner.suggest("accuracy", [0.9440, 0.9380], Threshold(0.80, 0.90)) == Threshold(0.81, 0.91)
    assert gpu_runner.suggest("score", [4.96, 4.54], Threshold(1.8, 3.6)) == Threshold(1.82, 3.63)


@pytest.mark.parametrize("name, lines", [("classify", 2), ("training", 1), ("gan", 1)])
def test_seeded_solutions_change_the_weights_seed_only(name, lines):
    nb = gpu_runner.seeded(ASSIGNMENTS / name / f"{name}.ipynb", 3)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert len(re.findall(r"^torch\.manual_seed\(3\)", source, re.MULTILINE)) == lines
    assert not re.search(r"^torch\.manual_seed\(0\)", source, re.MULTILINE)
    assert "Generator().manual_seed(0)" in source or name != "training"  # the data split keeps its seed


@pytest.mark.slow
def test_cpu_dry_run_grades_examples_as_expected_and_measures_throughput(builds, tmp_path):
    """The runner's --device cpu --small mode on shapes and convolution (built once per session), two copies of
    shapes at --jobs 2: under 1.5 min on two idle cores."""
    dist = builds.build("shapes").autograder_dir.parent.parent
    assert builds.build("convolution").autograder_dir.parent.parent == dist
    saved = tmp_path / "saved"
    run = subprocess.run([sys.executable, "benchmarks/gpu_runner.py", "--device", "cpu", "--small", "--deadline", "240",
                          "--phases", "examples", "throughput", "--throughput-assignment", "shapes",
                          "--throughput-jobs", "2", "--dist", str(dist), "--out", str(tmp_path / "work"),
                          "--save", str(saved)], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert "MISMATCH" not in out, out
    assert run.returncode == 0, out
    assert re.search(r"examples shapes: 8/8 as expected", out), out
    assert re.search(r"examples convolution: 9/9 as expected", out), out
    line = re.search(r"throughput shapes --jobs 2 .*: 2/2 graded in .*: ([\d.]+) s per submission;"
                     r".* full marks (\d+)/(\d+)", out)
    assert line and float(line.group(1)) > 0 and line.group(2) == line.group(3) == "2", out
    summary = json.loads((saved / "summary.json").read_text())
    assert summary["complete"] and summary["mismatches"] == []
    assert summary["throughput"]["jobs2"]["full_marks"] == 2
    assert (saved / "gradebooks" / "examples-convolution.csv").exists()
