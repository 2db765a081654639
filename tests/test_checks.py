"""Unit tests of the check API and the convolution checks, with reference/student tables.

Students are plain namespaces here (`LocalStudent`), so these run without kernels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.build.assignment import load_assignment
from autograder.checks import Misconception, close, exact, run_check
from autograder.kernel.probe import Call, Forbid, LocalStudent
from conftest import ASSIGNMENTS

SOURCE = load_assignment(ASSIGNMENTS / "convolution")
REF = SOURCE.reference
CHECKS = {c.name: c for c in SOURCE.checks.checks}


# ------------------------------------------------------------------ comparators, ref/student table

T = torch.tensor([[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("student, expected, passed, words", [
    (Call("f", value=T.clone()), T, True, "matches the reference"),
    (Call("f", value=T + 1e-7), T, True, "matches"),
    (Call("f", value=T + 0.1), T, False, "4 of 4 values differ"),
    (Call("f", value=T.double()), T, False, "dtype torch.float64"),
    (Call("f", value=T[:1]), T, False, "shape (1, 2)"),
    (Call("f", value=None), T, False, "returned None"),
    (Call("f", value=[[1.0, 2.0]], type="list"), T, False, "returned list"),
    (Call("f", missing=True), T, False, "is not defined"),
    (Call("f", error="ZeroDivisionError: division by zero"), T, False, "raised ZeroDivisionError"),
    (Call("f", value=T, forbidden=("convolution",)), T, False, "does not allow (convolution)"),
    (Call("f", value=T, devices=("cpu",)), T, True, "matches"),
])
def test_close(student, expected, passed, words):
    verdict = close(student, expected, device="cpu")
    assert verdict.passed is passed
    assert words in verdict.message


def test_close_names_the_misconception_that_matches():
    flipped = Misconception("flipped kernel", "no flip", T.flip(0, 1))
    verdict = close(Call("f", value=T.flip(0, 1)), T, misconceptions=[flipped])
    assert not verdict.passed and "flipped kernel" in verdict.message and verdict.hint == "no flip"


def test_close_names_a_mistake_whose_value_overflows_to_nan():
    """The naive softmax on large logits: NaN where exp overflowed, as the known mistake computes it."""
    logits = torch.tensor([[1000.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    naive = logits.exp() / logits.exp().sum(1, keepdim=True)
    overflow = Misconception("exp overflowed: subtract the row's max first", "x - x.max(dim, keepdim=True)", naive)
    verdict = close(Call("softmax", value=naive.clone()), logits.softmax(1), misconceptions=[overflow])
    assert not verdict.passed and "exp overflowed" in verdict.message and verdict.hint.startswith("x - x.max")


def test_close_on_wrong_device_says_so():
    verdict = close(Call("f", value=T, devices=("cpu",)), T, device="cuda")
    assert not verdict.passed and "on cpu" in verdict.message


def test_off_by_one_shape_gets_the_formula():
    verdict = close(Call("f", value=torch.zeros(2, 2)), torch.zeros(3, 3))
    assert "off by one" in verdict.hint


@pytest.mark.parametrize("value, expected, passed", [
    (3, 3, True), (3, 4, False), (True, 1, False), ((1, 2), (1, 2), True), ([1, 2], (1, 2), True),
    (3.0, 3, True), (torch.tensor([1]), torch.tensor([1]), True), (torch.tensor([1.0]), torch.tensor([1]), False),
])
def test_exact(value, expected, passed):
    assert exact(Call("f", value=value), expected).passed is passed


def test_a_check_that_raises_is_an_error_outcome_with_its_traceback():
    from autograder.checks import Check

    def broken(st, ref, rng):
        raise KeyError("oops")

    outcome = run_check(Check("broken", "q", broken, public=True), LocalStudent({}), REF, 0)
    assert outcome.status == "error" and outcome.score == 0 and "could not run" in outcome.message
    assert "KeyError: 'oops'" in outcome.detail and "def broken" not in outcome.message


def test_a_check_whose_data_is_not_there_says_what_is_missing(tmp_path):
    """Found by a newcomer's trial: a notebook self-checked without the `data/` folder handed out with it heard "the
    grader could not run this check; it is left out of your score until your instructor has looked at it". The data
    a check reads, missing, is an error of its own (phase `data`, left out of the score like any check that could
    not run) whose message says what is missing; a student is shown it for a public check, and for a hidden one
    the usual words."""
    from autograder.checks import Check, mnist_split
    from autograder.render import outcome_lines

    def reads_data(st, ref, rng):
        mnist_split(tmp_path / "data", "train")

    outcome = run_check(Check("mnist_mean_value", "mnist_stats", reads_data, public=True), LocalStudent({}), REF, 0)
    said = "could not run: the MNIST train split it reads is not in data/ (is the data/ folder handed out with the " \
           "notebook beside it?)"
    assert (outcome.status, outcome.phase, outcome.message, outcome.counted) == ("error", "data", said, False)
    assert outcome_lines(outcome, "student", symbols=True) == [f"! mnist_mean_value: {said}"]
    hidden = run_check(Check("hidden_mean", "mnist_stats", reads_data, public=False), LocalStudent({}), REF, 0)
    assert "the grader could not run this check" in outcome_lines(hidden, "student")[0]


@pytest.mark.parametrize("fraction, status", [(1.0, "passed"), (0.5, "partial"), (0.0, "failed")])
def test_outcomes_carry_a_status(fraction, status):
    from autograder.checks import Check, Verdict

    check = Check("c", "q", lambda st, ref, rng: Verdict(fraction >= 1, "m", fraction=fraction), public=True)
    assert run_check(check, LocalStudent({}), REF, 0).status == status


def test_ctx_is_given_by_name_even_keyword_only():
    from autograder.checks import Check, Context, passed

    seen = {}

    def wants_ctx(st, rng, *, ctx):
        seen["ctx"] = ctx
        return passed("ok")

    ctx = Context(SOURCE.config)
    assert run_check(Check("k", "conv2d", wants_ctx, public=True), LocalStudent({}), REF, 0, ctx).passed
    assert seen["ctx"] is ctx


def test_a_check_with_a_parameter_no_one_gives_is_refused_at_registration():
    from autograder.checks import CheckSet
    from autograder.errors import TorchgradeError

    with pytest.raises(TorchgradeError, match="takes context"):
        CheckSet().public("q")(lambda st, ref, rng, context: None)


def test_check_names_are_unique_across_public_and_hidden():
    from autograder.checks import CheckSet
    from autograder.errors import TorchgradeError

    public, hidden = CheckSet(), CheckSet()
    public.public("q")(lambda st, ref, rng: None)
    hidden.hidden("q")(lambda st, ref, rng: None)
    with pytest.raises(TorchgradeError, match="two checks are named '<lambda>'"):
        public + hidden


def test_a_check_under_a_question_the_configuration_lacks_is_refused_at_load(tmp_path):
    import shutil

    from autograder.errors import ConfigError

    source = tmp_path / "convolution"
    shutil.copytree(ASSIGNMENTS / "convolution", source)
    config = source / "assignment.toml"
    config.write_text(config.read_text().replace('reference = "../../reference/convolution.py"',
                                                 f'reference = "{ASSIGNMENTS.parent / "reference" / "convolution.py"}"'))
    hidden = source / "checks" / "hidden.py"
    hidden.write_text(hidden.read_text() + '\n\n@checks.hidden("conv2d_singel")\ndef typo(st, ref, rng):\n'
                                           '    return None\n')
    with pytest.raises(ConfigError, match="conv2d_singel"):
        load_assignment(source)


def test_difference_counts_with_the_tolerance_it_reports():
    expected = torch.zeros(4)
    verdict = close(Call("f", value=torch.tensor([0.0, 0.0, 5e-4, 5e-2])), expected, rtol=0, atol=1e-3)
    assert "1 of 4 values differ" in verdict.message and "atol=0.001" in verdict.message


def test_calls_on_returned_objects_get_their_keyword_arguments_materialised():
    from autograder.checks import ref

    class Box:
        def put(self, value=None):
            return value * 2

    st = LocalStudent({"Box": Box, "seven": 7})
    call = st.call("Box", then=[("put", (), {"value": ref("seven")})])
    assert call.error is None and call.value == [14]


def test_forbidden_modules_without_names_refuse_every_function_of_theirs():
    scipy_signal = pytest.importorskip("scipy.signal")
    st = LocalStudent({"smooth": lambda x: scipy_signal.convolve(x, [1, 1]).sum()})
    call = st.call("smooth", [1.0, 2.0, 3.0], forbid=Forbid(modules=("scipy.signal",)))
    assert call.forbidden and any("scipy.signal" in f for f in call.forbidden)


def test_recorded_values_do_not_depend_on_the_device_they_were_built_on():
    from autograder.build.recorded import Recording, Replay

    class Reference:
        @staticmethod
        def run(x, device):
            return x * 2

    recording = Recording(Reference())
    recording.run(torch.ones(2), "cuda")
    replay = Replay(recording.records)
    assert torch.equal(replay.run(torch.ones(2), "cpu"), torch.ones(2) * 2)


# ------------------------------------------------------------------ the guard against library code

def test_forbidden_ops_are_caught_through_any_alias():
    conv = F.conv2d  # a saved reference still ends at the dispatcher
    layer = torch.nn.Conv2d(1, 1, 3)
    namespace = {"a": lambda x, w: conv(x, w), "b": lambda x, w: layer(x), "c": lambda x, w: x.unfold(2, 3, 1),
                 "d": lambda x, w: F.unfold(x, 3), "e": lambda x, w: F.max_pool2d(x, 2)}
    st = LocalStudent(namespace)
    forbid = Forbid(ops=("convolution", "im2col", "max_pool"))
    x, w = torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3)
    used = {name: st.call(name, x, w, forbid=forbid).forbidden for name in namespace}
    assert used["a"] and used["b"] and used["d"] and used["e"]
    assert used["c"] == ()  # Tensor.unfold is a plain view, allowed


def test_scipy_convolution_is_caught():
    scipy_signal = pytest.importorskip("scipy.signal")
    st = LocalStudent({"f": lambda im, k: torch.from_numpy(scipy_signal.correlate2d(im.numpy(), k.numpy(), "valid"))})
    call = st.call("f", torch.randn(5, 5), torch.randn(3, 3),
                   forbid=Forbid(modules=("scipy.signal",), names=("correlate", "convolve")))
    assert call.forbidden


# ------------------------------------------------------------------ convolution checks on known students

def loops_conv2d_single(image, kernel):
    kh, kw = kernel.shape
    out = torch.zeros(image.shape[0] - kh + 1, image.shape[1] - kw + 1, dtype=image.dtype, device=image.device)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (image[i:i + kh, j:j + kw] * kernel).sum()
    return out


def unfold_conv2d(x, weight, bias=None, stride=1, padding=0):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = F.pad(x, (pw, pw, ph, ph))
    kh, kw = weight.shape[-2:]
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)  # N, C, OH, OW, kh, kw
    out = torch.einsum("ncijhw,ochw->noij", windows, weight)
    return out if bias is None else out + bias[None, :, None, None]


def edge_magnitude(image, conv=loops_conv2d_single):
    return torch.sqrt(conv(image, REF.SOBEL_X) ** 2 + conv(image, REF.SOBEL_Y) ** 2)


def pool(x, kernel_size, stride=None):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    stride = kernel_size if stride is None else stride
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    return x.unfold(2, kh, sh).unfold(3, kw, sw).amax(dim=(-1, -2))


CORRECT = {"conv2d_single": loops_conv2d_single, "conv2d": unfold_conv2d, "max_pool2d": pool,
           "SOBEL_X": REF.SOBEL_X.clone(), "SOBEL_Y": REF.SOBEL_Y.clone(), "edge_magnitude": edge_magnitude}

STUDENTS = {
    "correct": {},
    "flipped": {"conv2d_single": lambda im, k: loops_conv2d_single(im, k.flip(0, 1)),
                "conv2d": lambda x, w, **kw: unfold_conv2d(x, w.flip(-1, -2), **kw)},
    "library": {"conv2d": lambda x, w, bias=None, stride=1, padding=0: F.conv2d(x, w, bias, stride, padding)},
    "one_sided": {"conv2d": lambda x, w, bias=None, stride=1, padding=0: unfold_conv2d(
        F.pad(x, (0, 2 * padding, 0, 2 * padding)) if isinstance(padding, int) else
        F.pad(x, (0, 2 * padding[1], 0, 2 * padding[0])), w, bias, stride, 0)},
    "no_bias": {"conv2d": lambda x, w, bias=None, stride=1, padding=0: unfold_conv2d(x, w, None, stride, padding)},
    "stride_one": {"max_pool2d": lambda x, k, stride=None: pool(x, k, 1 if stride is None else stride)},
    "swapped_sobel": {"SOBEL_X": REF.SOBEL_Y.clone(), "SOBEL_Y": REF.SOBEL_X.clone()},
    "abs_sum": {"edge_magnitude": lambda im: loops_conv2d_single(im, REF.SOBEL_X).abs()
                + loops_conv2d_single(im, REF.SOBEL_Y).abs()},
    "returns_float64": {"conv2d_single": lambda im, k: loops_conv2d_single(im, k).double()},
}

TABLE = [
    # student, check, passes, words in the message or hint
    ("correct", "conv2d_single_small", True, "matches"),
    ("correct", "conv2d_single_random", True, "random shapes"),
    ("correct", "conv2d_random_everything", True, "stride, padding and bias"),
    ("correct", "max_pool2d_random_stride", True, "explicit strides"),
    ("correct", "max_pool2d_floor_mode", True, "floor mode"),
    ("correct", "sobel_kernels", True, "Sobel kernels"),
    ("correct", "edge_magnitude_ramp", True, "matches"),
    ("flipped", "conv2d_single_small", False, "flipped kernel"),
    ("flipped", "conv2d_random_shapes", False, "flipped kernel"),
    ("library", "conv2d_small", False, "does not allow"),
    ("library", "conv2d_single_small", True, "matches"),
    ("one_sided", "conv2d_stride_padding", False, "one side only"),
    ("one_sided", "conv2d_small", True, "matches"),
    ("no_bias", "conv2d_small", False, "bias is not added"),
    ("stride_one", "max_pool2d_default_stride", False, "stride defaulted to 1"),
    ("stride_one", "max_pool2d_random_stride", True, "explicit strides"),
    ("swapped_sobel", "sobel_kernels", False, "SOBEL_X holds SOBEL_Y"),
    ("abs_sum", "edge_magnitude_square", False, "|gx| + |gy|"),
    ("returns_float64", "conv2d_single_small", False, "dtype torch.float64"),
]


@pytest.mark.parametrize("student, check, passes, words", TABLE)
def test_convolution_checks(student, check, passes, words):
    namespace = {**CORRECT, **STUDENTS[student]}
    c = CHECKS[check]
    seed = SOURCE.config.seed if c.public else SOURCE.config.hidden_seed
    outcome = run_check(c, LocalStudent(namespace), REF, seed)
    assert outcome.passed is passes, outcome.message
    assert words in outcome.message + " " + outcome.hint


def test_every_question_has_a_public_check():
    for q in SOURCE.config.question_ids:
        assert any(c.public for c in SOURCE.checks.for_question(q)), q


def test_then_calls_methods_on_what_the_call_returned():
    class Counter:
        def __init__(self, start):
            self.n = start

        def step(self, by):
            self.n += by
            return self.n

    st = LocalStudent({"Counter": Counter})
    call = st.call("Counter", 10, then=[("step", (1,), {}), ("step", (5,), {})])
    assert call.value == [11, 16]
    missing = st.call("Counter", 1, then=[("jump", (), {})])
    assert "no method 'jump'" in missing.error


def test_module_snapshots_carry_types_and_parameter_counts():
    from autograder.checks import module_snapshot

    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared, torch.nn.BatchNorm1d(3))
    snap = module_snapshot(model)
    assert snap.n_params == 12 + 6  # the shared layer once; BatchNorm's running stats are buffers
    assert snap.modules["1"] == "torch.nn.modules.activation.ReLU"


def test_a_self_check_leaves_the_students_model_mode_and_random_state_alone():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    st = LocalStudent({"model": model})
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    st.call("model", torch.ones(1, 2), eval_mode=True, no_grad=True, seed=7)
    assert model.training
    assert torch.equal(torch.rand(1), expected_next)


# ------------------------------------------------------------------ more comparators

@pytest.mark.parametrize("value, passed, words", [
    (0.3, True, "is 0.3"), (0.3000001, True, "is 0.3"), (0.31, False, "expected 0.3"),
    (torch.tensor(0.3), True, "is 0.3"), (None, False, "returned None"), (True, False, "expected a float"),
    (0.7, False, "that is the accuracy"),
])
def test_scalar(value, passed, words):
    from autograder.checks import scalar

    accuracy = Misconception("that is the accuracy", "1 - error", 0.7)
    verdict = scalar(Call("e", value=value, type=type(value).__name__), 0.3, atol=1e-6,
                     misconceptions=[accuracy])
    assert verdict.passed is passed and words in verdict.message


def test_strict_scalar_wants_a_python_float():
    from autograder.checks import scalar

    verdict = scalar(Call("e", value=torch.tensor(0.3)), 0.3, strict=True)
    assert not verdict.passed and ".item()" in verdict.hint


@pytest.mark.parametrize("value, passed, words", [
    ({"a": 1.0, "b": torch.ones(2)}, True, "2 entries"), ({"a": 1.0}, False, "keys"),
    ({"a": 1.5, "b": torch.ones(2)}, False, "['a'] is 1.5"), ([1], False, "expected a dict"),
])
def test_mapping(value, passed, words):
    from autograder.checks import mapping

    verdict = mapping(Call("m", value=value, type=type(value).__name__), {"a": 1.0, "b": torch.ones(2)})
    assert verdict.passed is passed and words in verdict.message


def test_frame():
    import pandas as pd

    from autograder.checks import frame

    want = pd.DataFrame({"layer": ["0", "1"], "params": [10, 0]})
    assert frame(Call("s", value=want.copy()), want).passed
    assert "row 1, column 'params' is 3" in frame(Call("s", value=want.assign(params=[10, 3])), want).message
    assert "no column(s) params" in frame(Call("s", value=want[["layer"]]), want).message
    assert "1 rows, expected 2" in frame(Call("s", value=want.head(1)), want).message


def test_returned_and_on_device():
    from autograder.checks import on_device, returned

    assert returned(Call("f", value=1), "an int") is None
    assert "returned None, expected an int" in returned(Call("f"), "an int").message
    assert "not defined" in returned(Call("f", missing=True), "an int").message
    assert on_device(Call("f", devices=("cpu",)), "cpu") is None
    assert "on cpu" in on_device(Call("f", devices=("cpu",)), "cuda").message


def test_states_close_and_where_they_differ():
    from autograder.checks import state_difference, states_close

    a = {"w": torch.ones(2), "n": torch.tensor(3)}
    assert states_close(a, {"w": torch.ones(2) + 1e-8, "n": torch.tensor(3)})
    assert state_difference(a, {"w": torch.ones(2), "n": torch.tensor(4)}) == "n differs"
    assert "w differs by up to 1" in state_difference(a, {"w": torch.zeros(2), "n": torch.tensor(3)})
    assert states_close(a, {"w": torch.ones(2)}, keys=["w"]) and not states_close(a, {"w": torch.ones(2)})


def test_mnist_split_reads_the_files_the_notebooks_read(tmp_path):
    from autograder.build import mnist
    from autograder.checks import mnist_split

    mnist.write_mnist(tmp_path / "student", tmp_path / "hidden")
    images, labels = mnist_split(tmp_path / "student", "test")
    assert images.shape == (500, 1, 28, 28) and images.dtype == torch.float32 and 0 <= images.min() <= images.max() <= 1
    assert labels.dtype == torch.int64 and len(labels) == 500
    raw, _ = mnist_split(tmp_path / "student", "train", scale="bytes")
    assert raw.dtype == torch.uint8 and len(raw) == 4000
    symmetric, _ = mnist_split(tmp_path / "hidden", "test", scale="symmetric")
    assert symmetric.min() >= -1 and symmetric.max() <= 1


# ------------------------------------------------------------------ library helpers of classify/params checks

def test_student_call_returned_as_and_value_problem():
    from autograder.checks import is_int, known_mistakes, returned_as, student_call, student_value, value_problem

    st = LocalStudent({"f": lambda x, bias=True: [x, bias], "m": "three"})
    call = student_call(st, "f", 2, bias=False)
    assert call.what == "f(2, bias=False)" and call.value == [2, False] and returned_as(call, "a list", list) is None
    wrong = returned_as(call, "a tensor", torch.Tensor, hint="Return a tensor.")
    assert "expected a tensor" in wrong.message and wrong.hint == "Return a tensor."
    raised = returned_as(Call("f", error="ValueError: when training"), "a tensor", torch.Tensor,
                         raised={"when training": "Call model.eval()."})
    assert "raised ValueError" in raised.message and raised.hint == "Call model.eval()."
    assert student_value(st, "m").what == "`m`" and value_problem(st.value("m"), "a str", str) is None
    assert "`m` is a str, not an int" in value_problem(st.value("m"), "an int", int).message
    assert value_problem(st.value("nope"), "an int", int, missing_hint="Define it.").hint == "Define it."
    mistakes = known_mistakes([("no bias", "Add the bias.", 0), ("twice", "Once.", 2)], lambda key: 10 + key)
    assert [(m.hint, m.expected) for m in mistakes] == [("Add the bias.", 10), ("Once.", 12)]
    assert is_int(3) and not is_int(True) and not is_int(3.0)


def test_model_helpers():
    from torch import nn

    from autograder.checks import (again, as_module, build, layer, leaf_types, model_call, module_snapshot, named, spec,
                                   with_weights)

    shared = build(spec(named("s", layer("Linear", 2, 2)), layer("ReLU"), again("s")))
    assert shared[0] is shared[2] and as_module(shared) is shared
    assert isinstance(as_module(spec(layer("ReLU"))), nn.Sequential)
    weights = (torch.ones(3, 2), torch.zeros(3), torch.full((3,), 2.0), torch.zeros(3), torch.zeros(3), torch.ones(3))
    rng_state = torch.random.get_rng_state()
    net = with_weights(lambda: nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), weights, training=True)
    assert torch.equal(torch.random.get_rng_state(), rng_state) and net.training
    assert torch.equal(net[1].weight, torch.full((3,), 2.0)) and int(net[1].num_batches_tracked) == 0
    nested = module_snapshot(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Sequential(nn.ReLU())))
    assert leaf_types(nested) == {"0": "Conv2d", "1.0": "ReLU"}

    def careless(model, shape):  # runs the model in train mode: BatchNorm's running statistics change
        model.train()(torch.randn(shape))
        return len(model)

    st, bn = LocalStudent({"careless": careless}), nn.Sequential(nn.BatchNorm1d(3)).eval()
    kept = model_call(st, "careless", bn, (4, 3), verdict=lambda c: exact(c, 1), done="counts", state=True,
                      running_stats="Call model.eval() first.")
    assert not kept.passed and "changed the model's parameters or buffers" in kept.message
    assert kept.hint == "Call model.eval() first."
    right = model_call(st, "careless", bn, (4, 3), verdict=lambda c: exact(c, 1), done="counts")
    assert right.passed and right.message == "careless(Sequential(BatchNorm1d), (4, 3)) counts."


# ---------------------------------------------------------------------------- check library: models, steps, samples

def test_specs_states_and_fixed_layers():
    from torch import nn

    from autograder.checks import args_state, brief, build, changed_keys, fixed, layer, random_state, spec, state_of

    model_spec = spec(layer("Linear", 3, 4), layer("BatchNorm1d", 4), training=True)
    state, again = (random_state(model_spec, torch.Generator().manual_seed(0)) for _ in range(2))
    assert all(torch.equal(v, again[k]) for k, v in state.items()) and float(state["1.running_var"].min()) >= 0.5
    model = build(model_spec, state)
    assert model.training and torch.equal(state_of(model)["0.weight"], state["0.weight"])
    assert changed_keys(state, state_of(model)) == [] and changed_keys(state, {}) == list(state)
    assert all(float(p.detach().abs().max()) == 0.25 for p in fixed(nn.Linear(2, 2), 0.25).parameters())
    assert brief(nn.Conv2d(64, 128, 4, bias=False)) == "Conv2d(64, 128, kernel_size=(4, 4), stride=(1, 1), ...)"
    assert args_state(Call("f", error="boom")) == {}


def test_run_module_judges_each_output():
    from torch import nn

    from autograder.checks import output_problem, passed, run_module

    def judge(what, out, n):
        return output_problem(what, out, (n, 2)) or passed("")

    class Net(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.lin = nn.Linear(3, width)

        def forward(self, x):
            return self.lin(x)

    st = LocalStudent({"Net": Net})
    inputs = [torch.randn(4, 3), torch.randn(1, 3)]
    ok = run_module(st, "Net", (2,), inputs, judge, "fine", seed=0, eval_mode=True, warmup=[torch.randn(2, 3)])
    assert ok.passed and ok.message.startswith("Net(2) in eval mode (after 1 batches in train mode) on input (4, 3)")
    assert "expected (4, 2)" in run_module(st, "Net", (5,), inputs, judge, "fine", seed=0).message
    raised = run_module(st, "Net", ("x",), inputs, judge, "ok", seed=0, raised={"no such": "?", "position 1": "a hint"})
    assert not raised.passed and raised.hint == "a hint"


def test_state_after_step_names_the_mistake():
    from autograder.checks import state_after_step

    before, good, bad = ({"w": torch.full((2,), v)} for v in (0.0, 1.0, 2.0))
    assert state_after_step("step", good, good, before) is None
    assert "no zero_grad" in state_after_step("step", bad, good, before, [(bad, "no zero_grad", "h")]).message
    assert state_after_step("step", before, good, before, unchanged_hint="u").hint == "u"
    assert "differ" in state_after_step("step", bad, good, before, hint="h").message


def test_numbers_exact_hint_and_normal_samples():
    from autograder.checks import as_numbers, call_problem, normal_sample

    assert as_numbers((1, 2.5)) == [1.0, 2.5] and as_numbers([1, "a"]) is None and as_numbers([1], 2) is None
    assert exact(Call("f", value=[True]), [False], hint="count").hint == "count"
    assert call_problem(Call("f", error="size mismatch for channels"), {"channels": "h"}).hint == "h"
    values = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 0.02
    assert normal_sample("w", values, 0.0, 0.02).passed
    wide = normal_sample("w", values * 10, 0.0, 0.02, [(lambda m, s: s > 0.1, "too wide", "smaller")])
    assert "too wide" in wide.message and wide.hint == "smaller"


def test_tensor_loader_and_model_accuracy(tmp_path):
    from types import SimpleNamespace

    from autograder.build import mnist
    from autograder.checks import model_accuracy, tensor_loader
    from autograder.config import Threshold

    assert [len(x) for x, _ in tensor_loader(torch.zeros(5, 2), torch.zeros(5), 2)] == [2, 2, 1]
    mnist.write_mnist(tmp_path / "student", tmp_path / "hidden")
    ctx = SimpleNamespace(data=tmp_path / "student", hidden=tmp_path / "hidden",
                          threshold=lambda name: Threshold(floor=0.5, full=0.9))
    st = LocalStudent({"model": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))})
    verdict = model_accuracy(st, ctx, "model", "mnist_model", "public test")
    assert not verdict.passed and "accuracy on the public test split" in verdict.message


# ---------------------------------------------------------------------------- check library: shapes, stats, convolution

def test_tensor_tuple_shape_list_and_int_or_pair():
    from autograder.checks import int_or_pair, shape_list, tensor_tuple

    want, sample = (torch.ones(2), torch.zeros(2)), (torch.ones(2), torch.full((2,), 0.5))
    assert tensor_tuple(Call("f", value=(torch.ones(2, 1).double(), torch.zeros(2))), want, ("mean", "std")).passed
    wrong = tensor_tuple(Call("f", value=sample), want, ("mean", "std"),
                         misconceptions=[Misconception("n-1", "h", sample)])
    assert "n-1" in wrong.message and wrong.hint == "h"
    assert "the std" in tensor_tuple(Call("f", value=(torch.ones(2), torch.ones(2))), want, ("mean", "std")).message
    assert tensor_tuple(Call("f", value=torch.ones(2)), want, ("mean", "std")).hint == "End with `return mean, std`."
    expected = [(2, 4, 8, 8), (2, 4, 4, 4)]
    assert shape_list(Call("f", value=[[2, 4, 8, 8], (2, 4, 4, 4)]), expected, ["Conv2d", "MaxPool2d"]).passed
    assert "only the final shape" in shape_list(Call("f", value=expected[1:]), expected, ["C", "P"]).message
    assert "batch dimension" in shape_list(Call("f", value=[s[1:] for s in expected]), expected, ["C", "P"]).message
    assert "after child 1 (P)" in shape_list(Call("f", value=[expected[0], (2, 4, 3, 3)]), expected, ["C", "P"]).message
    rng = torch.Generator().manual_seed(0)
    drawn = [int_or_pair(rng, 2, 3) for _ in range(20)]
    assert {type(d) for d in drawn} == {int, tuple}
    assert all(v in (2, 3) for d in drawn for v in (d if isinstance(d, tuple) else (d,)))


def test_a_self_check_of_an_honest_function_never_starts_the_process_wide_observer(tmp_path, monkeypatch):
    """In a student's own Jupyter kernel no thread is registered as the kernel's: the call's own thread (running the
    cell) is not "another thread running the notebook's code", and the grader's own code is library code. The
    observer costs about a hundred times the dispatch mode and logs two lines per call on the kernel's stderr."""
    from autograder.kernel.kernel_side import guard
    from autograder.kernel.kernel_side.origin import default_origin

    started = []
    monkeypatch.setattr(guard.Observer, "start", lambda self: started.append(self) or True)
    student = tmp_path / "student_cell.py"  # a cell's code: outside every library root
    student.write_text("import torch\n\ndef conv(x, w):\n    return (x[:2, :2] * w).sum()\n")
    namespace: dict = {}
    exec(compile(student.read_text(), str(student), "exec"), namespace)
    call = LocalStudent(namespace).call("conv", torch.ones(3, 3), torch.ones(2, 2), forbid=Forbid(ops=("conv",)))
    assert call.ok and call.value.item() == 4 and not call.forbidden
    assert started == []

    import autograder.checks.core as checks_core

    frame = type("Frame", (), {"f_code": checks_core.run_check.__code__})()
    assert not default_origin().is_student(frame)  # the grader's checks, in a self-check's .torchgrade/lib too


def test_a_later_mistake_is_computed_only_for_a_wrong_answer_and_then_once():
    from autograder.checks.core import every_mistake_computed

    computed = []

    def flipped():
        computed.append(1)
        return torch.tensor([3.0, 2.0, 1.0])

    mistake = Misconception.later("flipped", "Do not flip it.", flipped)
    expected = torch.tensor([1.0, 2.0, 3.0])
    assert close(Call("f", value=expected.clone()), expected, misconceptions=[mistake]).passed and computed == []
    for _ in range(2):
        verdict = close(Call("f", value=torch.tensor([3.0, 2.0, 1.0])), expected, misconceptions=[mistake])
        assert not verdict.passed and "flipped" in verdict.message and verdict.hint == "Do not flip it."
    assert computed == [1]
    with every_mistake_computed():  # the build records every value a public check may ask the reference for
        Misconception.later("flipped", "", flipped)
    assert computed == [1, 1]
