"""Figures in the feedback: declared per assignment, drawn after the checks, embedded in the HTML under their
question, never changing a grade; skipped when they fail or run out of time."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import replace

import pytest

from autograder.build.assignment import load_assignment
from autograder.checks import Context, Outcome
from autograder.checks.figures import FigureSet, MAX_PNG_BYTES, new_figure, run_figures
from autograder.report.feedback import shown_figures
from autograder.config import GradeSettings
from autograder.errors import TorchgradeError
from autograder.kernel.probe import LocalStudent
from autograder.grading.pipeline import grade_submission
from autograder.report.feedback import feedback_html, feedback_text
from autograder.report.results_json import gradescope_json
from autograder.report.writers import write_feedback
from autograder.report.records import from_data, to_data
from autograder.outcomes import QuestionScore, SubmissionResult
from conftest import ASSIGNMENTS, expected_points

PNG = b"\x89PNG\r\n\x1a\n"
FIGURED = ("training", "classify", "gan", "convolution")


def line_figure():
    fig = new_figure(2, 1.5)
    fig.subplots().plot([0, 1, 2], [1, 0, 1])
    return fig


def config():
    return load_assignment(ASSIGNMENTS / "convolution").config


def section(page: str, question: str) -> str:
    """The HTML of one question: its card, from its heading to the card's end."""
    match = re.search(rf"<section class='question [^']*'><div><h2><span>{question}</span>.*?</section>", page, re.S)
    assert match, f"no section for {question}"
    return match.group(0)


# ---------------------------------------------------------------------------- declaring figures

@pytest.mark.parametrize("name", FIGURED)
def test_assignments_declare_their_figures(name):
    assignment = load_assignment(ASSIGNMENTS / name)
    figures = assignment.figures.figures
    assert figures, name
    assert all(f.question in assignment.config.question_ids and f.audience == "student" for f in figures)


def test_assignments_without_figures_load_an_empty_set():
    assert load_assignment(ASSIGNMENTS / "shapes").figures.figures == []


def test_a_figure_must_name_a_question_and_take_known_arguments():
    figures = FigureSet()

    @figures.figure("nope", "a figure of no question")
    def stray(st):
        return None

    with pytest.raises(TorchgradeError, match="stray"):
        figures.validate(["sobel"])
    with pytest.raises(TorchgradeError, match="takes student"):
        figures.figure("sobel", "t")(lambda student: None)
    with pytest.raises(TorchgradeError, match="two figures"):
        figures.figure("nope", "again")(stray)


# ---------------------------------------------------------------------------- drawing them

def test_figures_that_raise_are_left_out_and_none_is_silent():
    figures = FigureSet()

    @figures.figure("sobel", "drawn")
    def drawn(st, rng):
        return line_figure()

    @figures.figure("sobel", "raises")
    def raises(st):
        raise ValueError("the grader's own bug")

    @figures.figure("sobel", "nothing to draw")
    def nothing(st):
        return None

    records = run_figures(figures.figures, LocalStudent({}), None, Context(config()))
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"drawn", "raises"}
    assert base64.b64decode(by_name["drawn"]["png"]).startswith(PNG) and by_name["drawn"]["error"] == ""
    assert by_name["raises"]["png"] == "" and "ValueError: the grader's own bug" in by_name["raises"]["error"]
    assert [f["name"] for f in shown_figures(records, "sobel", "student")] == ["drawn"]
    assert [f["name"] for f in shown_figures(records, "sobel", "instructor")] == ["drawn", "raises"]


def test_a_figure_out_of_time_is_left_out_and_the_next_not_tried():
    figures = FigureSet()

    @figures.figure("conv2d", "slow")
    def slow(st):
        time.sleep(0.3)
        return None

    @figures.figure("conv2d", "after the slow one")
    def after(st):
        return line_figure()

    records = run_figures(figures.figures, LocalStudent({}), None, Context(config()), seconds=0.1)
    assert [(r["name"], r["png"]) for r in records] == [("slow", ""), ("after", "")]
    assert "not drawn within" in records[0]["error"] and "not tried" in records[1]["error"]


def test_a_figure_call_after_its_deadline_reaches_no_student():
    figures, asked = FigureSet(), []

    @figures.figure("sobel", "late")
    def late(st):
        time.sleep(0.15)
        asked.append(st.call("edge_magnitude", 1))
        return None

    [record] = run_figures(figures.figures, LocalStudent({"edge_magnitude": lambda x: x}), None, Context(config()),
                           seconds=0.1)
    assert asked[0].error == "the figure's time ran out" and "not drawn within" in record["error"]


def test_convolution_figure_on_a_student_without_the_square_root():
    """The edge-map figure drawn without a kernel: a small PNG (tens of KB)."""
    assignment = load_assignment(ASSIGNMENTS / "convolution")
    ref = assignment.reference
    student = LocalStudent({"edge_magnitude": lambda im: (ref.conv2d_single(im, ref.SOBEL_X) ** 2
                                                          + ref.conv2d_single(im, ref.SOBEL_Y) ** 2)})
    [record] = run_figures(assignment.figures.figures, student, ref, Context(assignment.config))
    png = base64.b64decode(record["png"])
    assert record["question"] == "sobel" and png.startswith(PNG) and 5_000 < len(png) < 100_000
    missing = run_figures(assignment.figures.figures, LocalStudent({}), ref, Context(assignment.config))
    assert missing == []  # nothing to draw for a notebook without edge_magnitude: no record, no noise


# ---------------------------------------------------------------------------- feedback, records, Gradescope

def figured_result() -> SubmissionResult:
    png = base64.b64encode(PNG + b"not really a png").decode()
    figures = [{"name": "edge_maps", "question": "sobel", "title": "edges <yours>", "audience": "student",
                "png": png, "error": "", "seconds": 0.5},
               {"name": "secret", "question": "sobel", "title": "instructor only", "audience": "instructor",
                "png": png, "error": "", "seconds": 0.5},
               {"name": "broken", "question": "conv2d", "title": "broken", "audience": "student", "png": "",
                "error": "ValueError: oops", "seconds": 0.1}]
    outcome = Outcome("edge_magnitude_square", "sobel", True, 1.0, 0.0, "wrong", "a hint", status="failed")
    return SubmissionResult("alice", "ok", [QuestionScore("conv2d", 8, 8), QuestionScore("sobel", 0, 4, [outcome])],
                            figures=figures)


def test_feedback_embeds_figures_under_their_question_for_each_audience():
    result = figured_result()
    student, instructor = feedback_html(result, "student"), feedback_html(result, "instructor")
    assert section(student, "sobel").count("data:image/png;base64,") == 1
    assert "edges &lt;yours&gt;" in section(student, "sobel") and "instructor only" not in student
    assert "broken" not in student and "oops" not in student
    assert section(instructor, "sobel").count("data:image/png;base64,") == 2
    assert "ValueError: oops" in section(instructor, "conv2d")
    text = feedback_text(result, "student")
    assert "see the html feedback for the figure" in text and "base64" not in text and "oops" not in text


def test_gradescope_json_carries_no_png():
    result = figured_result()
    assert result.figures[0]["png"] not in json.dumps(gradescope_json(result, config()))


def test_records_keep_figures_and_read_results_recorded_before_them():
    result = figured_result()
    assert from_data(json.loads(json.dumps(to_data(result)))).figures == result.figures
    old = to_data(result)
    del old["figures"]
    assert from_data(old).figures == []


# ---------------------------------------------------------------------------- grading real notebooks

@pytest.mark.slow
def test_graded_flawed_notebook_gets_its_figure_under_its_question(convolution_build, tmp_path):
    bundle = load_assignment(convolution_build.autograder_dir)
    assert not (convolution_build.student_dir / ".torchgrade" / "figures.py").exists()  # grader only
    assert [(f["name"], f["error"]) for f in convolution_build.solution.figures] == [("edge_maps", "")]
    assert convolution_build.blank.figures == []  # no edge_magnitude: nothing to draw
    off_by_one = grade_submission(ASSIGNMENTS / "convolution" / "examples" / "off_by_one.ipynb", bundle,
                                  GradeSettings())
    assert off_by_one.figures == []  # an edge map of another shape than the reference's is never drawn
    result = grade_submission(ASSIGNMENTS / "convolution" / "examples" / "no_sqrt.ipynb", bundle, GradeSettings())
    [figure] = result.figures
    assert figure["question"] == "sobel" and figure["error"] == ""
    png = base64.b64decode(figure["png"])
    assert png.startswith(PNG) and len(png) < MAX_PNG_BYTES
    write_feedback(tmp_path, result, bundle.config)
    for folder in ("feedback", "instructor"):
        page = (tmp_path / folder / "no_sqrt.html").read_text()
        assert figure["png"] in section(page, "sobel")
        assert "data:image/png" not in page.replace(section(page, "sobel"), "")
        assert "see the html feedback" in (tmp_path / folder / "no_sqrt.txt").read_text()


@pytest.mark.slow
def test_a_failing_figure_changes_no_grade(convolution_build):
    bundle = load_assignment(convolution_build.autograder_dir)
    figures = FigureSet()

    @figures.figure("sobel", "asks the kernel, then raises")
    def asks_then_raises(st, ref):
        st.call("edge_magnitude", "not an image")
        st.value("no_such_name")
        raise RuntimeError("a bug in a figure")

    @figures.figure("conv2d", "raises at once")
    def raises(st):
        raise ZeroDivisionError("another")

    drawn = replace(bundle, loader=lambda: replace(bundle.grading, figures=figures))  # these figures, its checks
    result = grade_submission(ASSIGNMENTS / "convolution" / "examples" / "off_by_one.ipynb", drawn, GradeSettings())
    want = {k: v for k, v in expected_points("convolution")["off_by_one"].items() if k != "diagnoses"}
    assert result.status == "ok" and result.flags == []
    assert {q.id: q.points for q in result.questions} == pytest.approx(want, abs=0.01)
    assert [(f["name"], f["png"]) for f in result.figures] == [("asks_then_raises", ""), ("raises", "")]
    assert "data:image/png" not in feedback_html(result, "student")
    assert "RuntimeError: a bug in a figure" in feedback_html(result, "instructor")


@pytest.mark.slow
def test_no_figures_draws_none_and_grades_the_same(convolution_build):
    bundle = load_assignment(convolution_build.autograder_dir)
    notebook = ASSIGNMENTS / "convolution" / "examples" / "off_by_one.ipynb"
    result = grade_submission(notebook, bundle, GradeSettings(figures=False))
    want = {k: v for k, v in expected_points("convolution")["off_by_one"].items() if k != "diagnoses"}
    assert result.status == "ok" and result.figures == []
    assert {q.id: q.points for q in result.questions} == pytest.approx(want, abs=0.01)


def test_a_row_of_images_is_one_raster_scaled_by_whole_pixels_with_its_scales():
    """`image_row`: every panel (a map with NaN and inf, a constant map, an RGB image) drawn side by side without
    axes, each scaled up by a whole factor; a panel's colour scale to its right with its two ends written."""
    import io

    import numpy
    import torch
    from PIL import Image

    from autograder.checks.figures import Panel, image_row, png_bytes

    values = torch.arange(12.0).reshape(3, 4)
    values[0, 0], values[0, 1] = float("nan"), float("inf")
    fig = image_row([Panel(values, "map", cmap="magma", scale=True), Panel(torch.zeros(28, 28), "flat"),
                     Panel(torch.rand(10, 10, 3), "rgb")], height=60)
    texts = fig.texts
    assert texts[:2] == ["map", "11"] and "2" in texts and texts[-2:] == ["flat", "rgb"]  # finite range: 2 .. 11
    pixels = torch.from_numpy(numpy.asarray(fig.image).astype("float32"))  # (height, width, 3)
    assert (pixels[:20] < 128).any()  # the titles are written above the images
    block = pixels[22 + 1:22 + 1 + 20, 7 + 1 + 20 * 3:7 + 1 + 20 * 4]  # the map's value 3 (row 0, column 3), ×20
    assert (block == block[0, 0]).all() and not (block[0, 0] == 255).all()  # one colour, no smoothing
    png = png_bytes(fig)
    assert png.startswith(PNG) and len(png) < MAX_PNG_BYTES
    width, height = Image.open(io.BytesIO(png)).size
    assert height >= 60 and width >= 4 * 20 + 28 * 2 + 10 * 6  # 3×4 → ×20, 28×28 → ×2, 10×10 → ×6


def test_a_row_of_images_has_the_pixels_of_matplotlibs_own_colour_maps():
    """`image_row` composes in bytes through each colour map's colours: every pixel of a panel (values across
    the whole range, both ends, NaN and ±inf) and of its colour scale is what matplotlib's colour map gives the same
    value, rounded to bytes; an RGB panel's pixels are its values rounded to bytes."""
    import numpy
    import torch
    from matplotlib import colormaps

    from autograder.checks.figures import Panel, image_row

    values = torch.linspace(0, 1, 30 * 40, dtype=torch.float64).reshape(30, 40)
    values[0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1 / 256])
    rgb = torch.rand(5, 6, 3, generator=torch.Generator().manual_seed(0))
    for cmap in ("viridis", "magma", "Reds", "gray", "tab10", "Set1"):  # 256 colours, and 10 and 9
        pixels = numpy.asarray(image_row([Panel(values, "v", cmap=cmap, vmin=0, vmax=1, scale=True),
                                          Panel(rgb, "rgb")], height=30).image)
        unit = values.nan_to_num(nan=1.0, posinf=1.0, neginf=0.0).numpy()
        want = (colormaps[cmap](unit)[..., :3] * 255 + 0.5).astype(numpy.uint8)
        assert (pixels[23:53, 8:48] == want).all()  # the panel (×1: 30 rows for a height of 30), inside its frame
        ramp = (colormaps[cmap](numpy.linspace(1, 0, 32))[:, :3] * 255 + 0.5).astype(numpy.uint8)
        assert (pixels[23:55, 57] == ramp).all()  # its colour scale, beside it, top to bottom
        assert (pixels[22, 7:49] == 153).all() and (pixels[22, 49] == 255).all()  # its frame: 0.6 of white
        left = 7 + 42 + 7 + 13 + 34 + 7 + 1  # the panel, a gap, its scale and labels, a gap, the RGB panel's frame
        assert (pixels[23:53:6, left:left + 36:6] == (rgb.double().numpy() * 255 + 0.5).astype(numpy.uint8)).all()


@pytest.mark.parametrize("shape", [(64,), (8, 4, 2), (0, 3)])
def test_a_panel_of_the_wrong_shape_is_refused_in_words_an_author_can_act_on(shape):
    """Found by an instructor following the docs: a 1-D panel failed with numpy's "axis 1 is out of bounds", which
    `validate` then quoted. It now says what the panel is and what image_row draws."""
    import torch

    from autograder.checks.figures import Panel, image_row

    with pytest.raises(ValueError, match=rf"panel 'input' is of shape {re.escape(str(shape))}: image_row draws a 2-D"):
        image_row([Panel(torch.zeros(shape), "input")])
