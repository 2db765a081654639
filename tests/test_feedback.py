"""Two audiences: what students read holds no hidden input or expected value; instructors read everything."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.checks import Outcome
from autograder.render import outcomes_text
from autograder.config import GradeSettings
from conftest import REPO, cell_index_defining

slow = pytest.mark.slow  # these grade real notebooks in kernels


@pytest.fixture(scope="module")
def graded(builds, tmp_path_factory):
    """A shapes notebook whose conv_output_size is wrong on every input, hidden ones included."""
    report = builds.build("shapes")
    folder = tmp_path_factory.mktemp("feedback")
    nb = nbformat.read(report.autograder_dir / "solution.ipynb", as_version=4)
    nb.cells[cell_index_defining(nb, "conv_output_size")].source = (
        "def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):\n    return 9999\n")
    nbformat.write(nb, folder / "wrong.ipynb")
    (folder / "empty.ipynb").write_text("")
    (folder / "latin1.ipynb").write_bytes(b"\xff\xfe not utf-8")
    out = folder / "out"
    grade_into(load_assignment(report.autograder_dir), [folder / f"{name}.ipynb" for name in (
        "wrong", "empty", "latin1")], out, GradeSettings())
    return out, load_assignment(report.autograder_dir)


@slow
def test_student_feedback_never_shows_a_hidden_expected_value(graded):
    out, bundle = graded
    instructor = (out / "instructor" / "wrong.txt").read_text()
    hidden = {c.name for c in bundle.checks.checks if not c.public}
    hidden_lines = [line for line in instructor.splitlines()
                    if any(f"{name} (hidden):" in line for name in hidden) and "expected" in line]
    expected = {m for line in hidden_lines for m in re.findall(r"expected ([0-9][0-9, ()]*)", line)}
    assert hidden_lines and expected  # the instructor sees what the hidden checks expected
    student_files = [out / "feedback" / "wrong.txt", out / "feedback" / "wrong.html", out / "results" / "wrong.json"]
    for path in student_files:
        text = path.read_text()
        for line in hidden_lines:
            assert line.split(": ", 1)[1] not in text, (path.name, line)
        for value in expected:
            assert f"expected {value}" not in text, (path.name, value)


@slow
def test_students_still_see_which_hidden_checks_failed_and_why_in_general(graded):
    out, bundle = graded
    text = (out / "feedback" / "wrong.txt").read_text()
    hidden = [c for c in bundle.checks.checks if not c.public and c.question == "conv_output_size"]
    for check in hidden:
        assert f"[FAIL] {check.name} (hidden): {check.doc}" in text
    results = json.loads((out / "results" / "wrong.json").read_text())
    visibility = {t["name"].split(" / ")[1]: t["visibility"] for t in results["tests"]}
    assert all(visibility[c.name] == "after_published" for c in hidden)


@slow
def test_nothing_a_student_sees_names_a_path_of_the_grading_machine(graded):
    out, _ = graded
    student_files = [*(out / "feedback").iterdir(), *(out / "results").iterdir()]
    assert len(student_files) == 9  # txt, html and json for each of the three submissions
    for path in student_files:
        text = path.read_text()
        for folder in (out.parent, REPO, Path.home()):
            assert str(folder) not in text, (path.name, folder)


def test_a_hint_shared_by_several_failing_checks_is_said_once_per_question():
    flip = "Flip the kernel"
    outcomes = [Outcome(f"case_{i}", "conv2d", i < 3, 1, 0, f"case {i} is wrong", flip, status="failed")
                for i in range(5)]
    outcomes.append(Outcome("other", "conv2d", True, 1, 0, "other is wrong", "Add the bias", status="failed"))
    for audience in ("student", "instructor"):
        text = "\n".join(outcomes_text(outcomes, audience))
        assert text.count(flip) == 1 and text.count("Add the bias") == 1
        assert text.index(flip) < text.index("case 1")  # under the first check that needs it
        assert all(f"case_{i}" in text or f"case {i}" in text for i in range(5))


@slow
def test_an_unreadable_submission_gets_one_reason_at_the_top(graded):
    out, _ = graded
    for name, reason in (("empty", "the file is empty"), ("latin1", "not a readable notebook")):
        for audience in ("feedback", "instructor"):
            text = (out / audience / f"{name}.txt").read_text()
            assert reason in text.splitlines()[0] and text.count(reason) == 1, text


# ---------------------------------------------------------------------------- the HTML page, without kernels

def page_of(audience="student"):
    """A submission's HTML feedback: one question passed, one failed (a public and a hidden check, a shared hint, a
    figure), one whose check the grader could not run."""
    from autograder.outcomes import QuestionScore, SubmissionResult
    from autograder.report.feedback import feedback_html

    fail = [Outcome("small", "conv2d", True, 1, 0, "conv2d(x) returned dtype torch.float32, expected torch.float64.",
                    "Create it with `torch.zeros(..., dtype=x.dtype)`.", status="failed"),
            Outcome("random", "conv2d", False, 1, 0, "conv2d(x) is 41, expected 42", "Create it with "
                    "`torch.zeros(..., dtype=x.dtype)`.", status="failed", doc="Random shapes."),
            Outcome("ok", "conv2d", True, 1, 1, "conv2d(y) matches the reference.", status="passed")]
    broken = [Outcome("summary_rows", "summary", True, 1, 0, "the grader could not run this check", "",
                      status="error", detail="Traceback (most recent call last):\n  KeyError: 'x'")]
    result = SubmissionResult("alice", "ok", [
        QuestionScore("conv2d", 2.67, 8, fail), QuestionScore("sobel", 4, 4, [
            Outcome("kernels", "sobel", True, 1, 1, "SOBEL_X and SOBEL_Y are right.", status="passed")]),
        QuestionScore("summary", 0, 5, broken)],
        cell_errors=["cell 4 (import prettytable): ModuleNotFoundError: No module named 'prettytable'"],
        figures=[{"name": "conv", "question": "conv2d", "title": "yours & the reference", "png": "iVBORw0KGgo=",
                  "audience": "student"}])
    return feedback_html(result, audience)


def question_section(page, question):
    return re.search(rf"<section class='question [^']*'><div><h2><span>{question}</span>.*?</section>", page).group(0)


def test_the_page_is_one_file_with_its_own_readable_style():
    page = page_of()
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert "sans-serif" in style and "monospace" in style and "@media" in style
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing fetched from elsewhere
    assert "<code>torch.zeros(..., dtype=x.dtype)</code>" in page  # code quoted in a hint, set in monospace
    assert "<code>cell 4 (import prettytable): ModuleNotFoundError" in page


def test_every_check_line_carries_its_outcome_colour():
    page = page_of()
    conv2d = question_section(page, "conv2d")
    assert conv2d.count("<li class='check failed'>") == 2 and conv2d.count("<li class='check passed'>") == 1
    assert "class='question fail'" in conv2d and "class='question pass" in question_section(page, "sobel")
    assert "<li class='check error'>" in question_section(page, "summary")
    for status in ("passed", "failed", "error"):
        assert re.search(rf"\.{status}[^{{]*\{{[^}}]*border-left-color", page), status


def test_the_figure_sits_beside_its_questions_checks():
    conv2d = question_section(page_of(), "conv2d")
    assert "<ul class='checks'>" in conv2d and "<div class='figures'><figure><img alt='yours &amp; the reference' " \
           "src='data:image/png;base64,iVBORw0KGgo='>" in conv2d
    assert "text-only" in question_section(page_of(), "sobel")  # no figure: the checks take the whole width


def test_the_page_keeps_hidden_messages_hints_once_and_tracebacks_for_instructors():
    student, instructor = page_of("student"), page_of("instructor")
    assert "expected 42" not in student and "Random shapes." in student and "expected 42" in instructor
    assert question_section(student, "conv2d").count("torch.zeros(..., dtype=x.dtype)") == 1
    assert "KeyError" not in student and "<pre>Traceback (most recent call last):" in instructor


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def blue_png() -> str:
    """A solid blue 300×200 PNG, base64: easy to find in a screenshot."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig = plt.figure(figsize=(3, 2), dpi=100, facecolor=(0, 0, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=(0, 0, 1))
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def screenshot(page: str, folder: Path, width: int):
    """The page as Chromium draws it in a window `width` pixels wide: an (H, W, RGB) array in [0, 1]."""
    from matplotlib.image import imread

    html_file, shot = folder / f"page{width}.html", folder / f"page{width}.png"
    html_file.write_text(page)
    proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", f"--screenshot={shot}", f"--window-size={width},1400",
                           html_file.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    return imread(shot)[..., :3]


@pytest.mark.skipif(chromium() is None, reason="no Chromium to render the page (Debian: apt-get install chromium)")
def test_the_page_renders_with_the_figure_beside_the_checks_or_below_them_on_narrow_screens(tmp_path):
    import numpy as np

    page = page_of().replace("iVBORw0KGgo=", blue_png())

    def colour(pixels, rgb):  # where a CSS colour is drawn, as a mask
        return (np.abs(pixels - np.array(rgb) / 255).max(axis=-1) < 0.06)

    for width in (1280, 600):
        pixels = screenshot(page, tmp_path, width)
        blue = np.argwhere(colour(pixels, (0, 0, 255)))
        fail, passed = np.argwhere(colour(pixels, (0xcf, 0x22, 0x2e))), colour(pixels, (0x1a, 0x7f, 0x37))
        assert len(blue) > 10_000 and len(fail) > 200 and passed.sum() > 200  # the figure, red and green checks
        first_badge = fail[:, 0].min()  # the first failing check's badge
        if width == 1280:  # beside: in the right part of the card, level with the checks
            assert blue[:, 1].min() > width * 0.55 and blue[:, 0].min() < first_badge + 60, (blue.min(0), fail.min(0))
        else:  # below the checks, from the card's left
            assert blue[:, 1].min() < width * 0.2 and blue[:, 0].min() > first_badge + 60, (blue.min(0), fail.min(0))


def test_self_check_lines_name_their_check():
    """Found by an instructor's trial: two public checks calling alike showed "✔ softmax(tensor(2, 5), 1) matches
    the reference" then "✘ softmax(tensor(2, 5), 1) is wrong: ...", which read as a contradiction."""
    from autograder.outcomes import Outcome
    from autograder.render import outcomes_text

    same_call = "softmax(tensor(2, 5), 1)"
    lines = outcomes_text([Outcome("softmax_small", "softmax", True, 1.0, 1.0, f"{same_call} matches the reference",
                                   status="passed"),
                           Outcome("softmax_large_logits", "softmax", True, 1.0, 0.0, f"{same_call} is wrong: NaN",
                                   "Subtract the maximum first.", status="failed")], symbols=True)
    assert lines == [f"  ✔ softmax_small: {same_call} matches the reference",
                     f"  ✘ softmax_large_logits: {same_call} is wrong: NaN", "      hint: Subtract the maximum first."]
