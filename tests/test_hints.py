"""Feedback that names the real mistake, on code shaped like what students write and copy (issue 19).

Each student is a snippet of real-shaped code run in a plain namespace (`LocalStudent`), graded by the assignment's
own checks against its reference, so these run without kernels.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from types import SimpleNamespace

import nbformat
import pytest
import torch

from autograder.build.assignment import load_assignment
from autograder.checks import Call, close, on_device, run_check
from autograder.kernel.probe import LocalStudent
from conftest import ASSIGNMENTS

LOADED = {name: load_assignment(ASSIGNMENTS / name) for name in ("convolution", "shapes", "stats", "params", "training")}


def outcome(assignment: str, check: str, student, ctx=None):
    """The outcome of one of the assignment's checks (public or hidden) on `student`."""
    source = LOADED[assignment]
    found = next(c for c in source.checks.checks if c.name == check)
    return run_check(found, student, source.reference, 0, ctx)


def student(code: str, device: str = "cpu") -> LocalStudent:
    """The names `code` defines, as a student side."""
    namespace: dict = {}
    exec(textwrap.dedent(code), namespace)
    return LocalStudent(namespace, device=device)


# ---------------------------------------------------------------------------- 1. the dtype and device clauses

LOOPS = """
    import torch

    def conv2d_single(image, kernel):
        kh, kw = kernel.shape
        out = torch.zeros(image.shape[0] - kh + 1, image.shape[1] - kw + 1{options})
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = (image[i:i + kh, j:j + kw] * kernel).sum()
        return out

    def conv2d(x, weight, bias=None, stride=1, padding=0):
        x = x.float()  # "to be safe"
        n, c, h, w = x.shape
        out_c, _, kh, kw = weight.shape
        out = torch.zeros(n, out_c, h - kh + 1, w - kw + 1)
        for i in range(h - kh + 1):
            for j in range(w - kw + 1):
                window = x[:, None, :, i:i + kh, j:j + kw]
                out[:, :, i, j] = (window * weight.float()).sum(dim=(2, 3, 4))
        return out if bias is None else out + bias.float().view(1, -1, 1, 1)
"""


def test_a_float32_building_conv2d_single_loses_the_float64_check():
    cast = outcome("convolution", "conv2d_single_float64", student(LOOPS.format(options="")))
    assert cast.status == "failed" and "dtype torch.float32, expected torch.float64" in cast.message
    assert "dtype=x.dtype" in cast.hint
    kept = outcome("convolution", "conv2d_single_float64", student(LOOPS.format(options=", dtype=image.dtype")))
    assert kept.status == "passed", kept.message


def test_conv2d_and_edge_magnitude_must_keep_float64_too():
    cast = outcome("convolution", "conv2d_float64", student(LOOPS.format(options="")))
    assert cast.status == "failed" and "dtype torch.float32" in cast.message
    sobel = textwrap.dedent(LOOPS.format(options="")) + textwrap.dedent("""
        SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        SOBEL_Y = SOBEL_X.T

        def edge_magnitude(image):
            gx, gy = conv2d_single(image, SOBEL_X.to(image)), conv2d_single(image, SOBEL_Y.to(image))
            return torch.sqrt(gx ** 2 + gy ** 2)
    """)
    ramp = outcome("convolution", "edge_magnitude_ramp", student(sobel))
    assert ramp.status == "failed" and "dtype torch.float32, expected torch.float64" in ramp.message


def test_a_result_built_on_the_cpu_for_an_input_on_another_device_is_caught():
    """A meta tensor stands in for a GPU: the student's zeros are made on the CPU, its input was on meta."""
    st = student("""
        import torch

        def conv2d_single(image, kernel):
            return torch.zeros(image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
    """, device="meta")
    call = st.call("conv2d_single", torch.ones(5, 5), torch.ones(3, 3))
    assert call.devices == ("cpu",)
    verdict = on_device(call, st.device)
    assert not verdict.passed and "on cpu, but its input was on meta" in verdict.message
    assert close(call, torch.zeros(3, 3), device=st.device).message == verdict.message


class ReportedOn:
    """A student side graded on `device`: the code runs here, on the CPU, and its results are reported on `device`
    unless the code pins them on the CPU (`pinned`), as the kernel reports what it returns."""

    def __init__(self, st: LocalStudent, device: str, pinned: bool):
        self.st, self.device, self.pinned = st, device, pinned

    def call(self, target, *args, **kwargs):
        call = self.st.call(target, *args, **kwargs)
        return replace(call, devices=tuple("cpu" if self.pinned else self.device for _ in call.devices))

    def value(self, name):
        return self.st.value(name)


def test_the_dtype_check_also_checks_the_device():
    loops = student(LOOPS.format(options=", dtype=image.dtype"))
    pinned = outcome("convolution", "conv2d_single_float64", ReportedOn(loops, "cuda", pinned=True))
    assert pinned.status == "failed" and "on cpu, but its input was on cuda" in pinned.message
    assert outcome("convolution", "conv2d_single_float64", ReportedOn(loops, "cuda", pinned=False)).passed


# ---------------------------------------------------------------------------- 2. the most telling verdict first

def test_a_float64_channels_last_result_hears_the_channels_last_hint():
    st = student("""
        import numpy as np
        import torch

        def to_channels_first(pixels, height, width):
            x = torch.tensor(np.asarray(pixels, dtype=float))  # float64, like numpy
            return x.reshape(x.shape[0], height, width, -1)
    """)
    verdict = outcome("shapes", "to_channels_first_colour_tensor", st)
    assert verdict.status == "failed" and "channels-last" in verdict.message, verdict.message
    assert "permute(0, 3, 1, 2)" in verdict.hint


def test_dtype_is_said_only_once_values_are_right():
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert "differs from the reference" in close(Call("f", value=(t + 1).double()), t).message
    assert "dtype torch.float64" in close(Call("f", value=t.double()), t).message


# ---------------------------------------------------------------------------- 3. an unanswered make_transform

def test_an_unanswered_make_transform_returned_none():
    st = student("""
        from torchvision import transforms

        def make_transform(mean, std):
            ...
    """)
    verdict = outcome("stats", "make_transform_rgb_pil", st)
    assert verdict.status == "failed" and "returned None" in verdict.message, verdict.message
    assert "NoneType" not in verdict.message and "body still `...`" in verdict.hint


# ---------------------------------------------------------------------------- 4. a cell that failed on an import

PRETTY = """\
import prettytable

def count_params(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
"""


def test_a_name_defined_by_a_failed_cell_names_that_cell_and_its_error():
    from autograder.checks import ExplainedStudent

    failed = [(PRETTY, "cell 4 (import prettytable) raised ModuleNotFoundError: No module named 'prettytable'")]
    verdict = outcome("params", "count_params_mlp", ExplainedStudent.of(LocalStudent({}), failed))
    assert verdict.status == "failed"
    assert "`count_params` is not defined: the cell that defines it failed, cell 4 (import prettytable) raised " \
           "ModuleNotFoundError: No module named 'prettytable'" in verdict.message, verdict.message
    assert "spelling" not in verdict.hint and "not installed" in verdict.hint
    plain = outcome("params", "count_params_mlp", ExplainedStudent.of(LocalStudent({}), []))
    assert "is not defined." in plain.message and "spelling" in plain.hint


def test_a_failed_cells_hint_follows_its_error_not_always_a_missing_module():
    """A stats notebook handed out without its data: the answer cell fails on a loader an earlier cell did not
    define. The hint must not talk of modules that are not installed."""
    from autograder.checks import ExplainedStudent

    answer = "stats = channel_stats(train_loader)\nmnist_mean, mnist_std = stats\n"
    failed = [(answer, "cell 16 (stats = channel_stats(train_loader)) raised NameError: name 'train_loader' is "
                       "not defined")]
    verdict = outcome("stats", "mnist_mean_value", ExplainedStudent.of(LocalStudent({}), failed))
    assert "`mnist_mean` is not defined: the cell that defines it failed, cell 16" in verdict.message, verdict.message
    assert "not installed" not in verdict.hint and "Run the notebook from the top" in verdict.hint, verdict.hint
    other = [(PRETTY, "cell 4 (import prettytable) raised ValueError: too many values to unpack")]
    verdict = outcome("params", "count_params_mlp", ExplainedStudent.of(LocalStudent({}), other))
    assert verdict.hint == "Fix that cell's error so the whole cell runs.", verdict.hint
    # the error is read as the pipeline hands it, not from the cell's label, whose first line may hold " raised "
    tricky = [(PRETTY, "cell 4 (x = 'it raised ImportError: no') raised RuntimeError: hook raised ImportError: x",
               "RuntimeError: hook raised ImportError: x")]
    verdict = outcome("params", "count_params_mlp", ExplainedStudent.of(LocalStudent({}), tricky))
    assert verdict.hint == "Fix that cell's error so the whole cell runs.", verdict.hint
    renamed = [(PRETTY, "cell 4 (from torch import nn, Modul) raised ImportError: cannot import name 'Modul' from "
                        "'torch.nn'", "ImportError: cannot import name 'Modul' from 'torch.nn'")]
    verdict = outcome("params", "count_params_mlp", ExplainedStudent.of(LocalStudent({}), renamed))
    assert "no such name" in verdict.hint and "not installed" not in verdict.hint, verdict.hint


def test_the_pipeline_hands_the_failed_cells_sources_and_errors():
    from autograder.checks import ExplainedStudent
    from autograder.grading.pipeline import failed_cells
    from autograder.kernel.execute import ExecutionReport
    from autograder.kernel.session import CellRun

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# params"),
                                         nbformat.v4.new_code_cell("import torch"), nbformat.v4.new_code_cell(PRETTY)])
    report = ExecutionReport(cells=[CellRun(1, "ok", 0.1, label="cell 2 (import torch)"),
                                    CellRun(2, "error", 0.1, "ModuleNotFoundError: No module named 'prettytable'",
                                            "cell 3 (import prettytable)")])
    cells = failed_cells(nb, report)
    assert cells == [(PRETTY, "cell 3 (import prettytable) raised ModuleNotFoundError: No module named "
                              "'prettytable'", "ModuleNotFoundError: No module named 'prettytable'")]
    undefined = ExplainedStudent.of(LocalStudent({}), cells).value("count_params")
    assert (undefined.cell, undefined.cell_error) == cells[0][1:]


def test_defined_names_reads_cells_with_magics_and_syntax_errors():
    from autograder.checks.student import defined_names

    assert defined_names("!pip install prettytable\n%matplotlib inline\n" + PRETTY) == {"prettytable", "count_params"}
    assert defined_names("def f(:\n    pass\nmnist_mean = 0.13\nx == 1\n") == {"f", "mnist_mean"}
    assert defined_names("from torch import nn as tnn\nA, (b, c) = 1, (2, 3)\nclass Net(tnn.Module): pass\n") == \
        {"tnn", "A", "b", "c", "Net"}


# ---------------------------------------------------------------------------- 5. common copied mistakes, named

def test_the_copied_trainable_only_one_liner_is_named():
    st = student("""
        def count_params(model, trainable_only=False):
            return sum(p.numel() for p in model.parameters() if p.requires_grad)
    """)
    verdict = outcome("params", "count_params_frozen", st)
    assert verdict.status == "failed" and "only the trainable parameters were counted" in verdict.message
    assert "trainable_only=False" in verdict.hint


def test_counting_parameter_tensors_is_named():
    st = student("""
        def count_params(model, trainable_only=False):
            return len(list(model.parameters()))
    """)
    verdict = outcome("params", "count_params_mlp", st)
    assert "the parameter tensors were counted" in verdict.message and "p.numel()" in verdict.hint


def test_flatten_features_returning_the_channel_count_is_named():
    st = student("""
        import torch

        def flatten_features(features, input_shape):
            with torch.no_grad():
                return features(torch.zeros(1, *input_shape)).shape[1]
    """)
    verdict = outcome("shapes", "flatten_features_small_face_cnn", st)
    assert verdict.status == "failed" and "the number of channels of the last feature map" in verdict.message
    assert "out.flatten(1).shape[1]" in verdict.hint


@pytest.fixture(scope="module")
def mnist_ctx(tmp_path_factory):
    from autograder.build import mnist

    root = tmp_path_factory.mktemp("mnist")
    mnist.write_mnist(root / "student", root / "hidden")
    return SimpleNamespace(data=root / "student", hidden=root / "hidden")


@pytest.mark.parametrize("check, value", [("mnist_mean_value", "0.1307"), ("mnist_mean_value", "0.1306604762738429"),
                                          ("mnist_std_value", "0.3081")])
def test_copied_mnist_constants_are_named(mnist_ctx, check, value):
    st = student(f"mnist_mean = mnist_std = {value}")
    verdict = outcome("stats", check, st, mnist_ctx)
    assert verdict.status == "failed" and "published" in verdict.message, verdict.message
    assert "4,000-image subset" in verdict.hint and "population std" not in verdict.hint


def test_an_mnist_std_averaged_per_image_is_named(mnist_ctx):
    st = student("""
        import torch
        from torchvision import datasets, transforms

        train = datasets.MNIST(root=DATA, train=True, download=False, transform=transforms.ToTensor())
        images = torch.stack([image for image, _ in train])
        mnist_mean = images.mean().item()
        mnist_std = images.view(len(images), -1).std(1).mean().item()
    """.replace("DATA", repr(str(mnist_ctx.data))))
    assert outcome("stats", "mnist_mean_value", st, mnist_ctx).passed
    verdict = outcome("stats", "mnist_std_value", st, mnist_ctx)
    assert verdict.status == "failed" and "std computed per image and averaged" in verdict.message


def test_the_forum_channel_stats_with_per_image_std_is_named():
    st = student("""
        def channel_stats(loader):
            mean, std, n = 0.0, 0.0, 0
            for images, _ in loader:
                b = images.size(0)
                images = images.view(b, images.size(1), -1)
                mean += images.mean(2).sum(0)
                std += images.std(2).sum(0)
                n += b
            return mean / n, std / n
    """)
    verdict = outcome("stats", "channel_stats_small", st)
    assert verdict.status == "failed" and "std computed per image and averaged" in verdict.message, verdict.message
    assert "std(2)" in verdict.hint


def test_a_same_size_conv2d_single_from_filtering_tutorials_is_named():
    st = student("""
        import torch

        def conv2d_single(image, kernel):
            kh, kw = kernel.shape
            h, w = kh // 2, kw // 2
            out = torch.zeros_like(image)
            for i in range(h, image.shape[0] - h):
                for j in range(w, image.shape[1] - w):
                    out[i, j] = (image[i - h:i + h + 1, j - w:j + w + 1] * kernel).sum()
            return out
    """)
    verdict = outcome("convolution", "conv2d_single_small", st)
    assert verdict.status == "failed" and "border of zeros" in verdict.message, verdict.message
    assert "(H - kh + 1, W - kw + 1)" in verdict.hint


@pytest.mark.slow
def test_a_real_notebook_whose_import_fails_hears_which_cell_failed(builds, tmp_path):
    from autograder.config import GradeSettings
    from autograder.grading.pipeline import grade_submission
    from conftest import cell_index_defining

    report = builds.build("params")
    nb = nbformat.read(report.autograder_dir / "solution.ipynb", as_version=4)
    cell = nb.cells[cell_index_defining(nb, "count_params")]
    cell.source = "import prettytable\n\n" + cell.source
    nbformat.write(nb, tmp_path / "pretty.ipynb")
    result = grade_submission(tmp_path / "pretty.ipynb", load_assignment(report.autograder_dir), GradeSettings())
    [question] = [q for q in result.questions if q.id == "count_params"]
    assert question.points == 0 and question.outcomes
    for o in question.outcomes:
        assert "`count_params` is not defined: the cell that defines it failed" in o.message, o.message
        assert "No module named 'prettytable'" in o.message and "spelling" not in o.hint


def test_a_training_loop_that_sums_the_loss_tensors_keeps_its_points_and_hears_why_item_matters():
    """The most copied training-loop slip: `total_loss += loss * len(x)`. The loss is right (a tensor is accepted
    as a number), so no point is lost, but the feedback says what it costs: every batch's graph kept alive."""
    code = """
        def train_epoch(model, loader, criterion, optimizer, device="cpu"):
            model.train()
            total_loss, seen = 0.0, 0
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                total_loss += loss * len(x)
                seen += len(x)
            return total_loss / seen
    """
    kept = outcome("training", "train_epoch_small", student(code))
    assert kept.status == "passed" and "keeps every batch's autograd graph alive" in kept.message, kept.message
    honest = outcome("training", "train_epoch_small", student(code.replace("loss * len(x)", "loss.item() * len(x)")))
    assert honest.status == "passed" and "autograd graph" not in honest.message, honest.message
