"""The library guard in one process (as a self-check runs it): its dispatch key sees every way to a forbidden operator
and reports the one the call reached; every other operator passes the key in C++; the thread's keys are as they
were after the call, whatever it did.

(Grading kernels, their tripwires and the attacks on them: test_guard_bypass.py and test_redteam.py.)
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from autograder.checks.ops import operators
from autograder.kernel.kernel_side import Guard, ListSink, default_origin
from autograder.kernel.kernel_side.guard import OP_KERNELS, OP_KEY

LIBRARY = {"ops": ("convolution", "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose", "_conv_depthwise",
                   "max_pool", "avg_pool")}
ORIGIN = default_origin()


def reported(fn, forbid=LIBRARY):
    sink = ListSink()
    with Guard(forbid, sink, ORIGIN):
        fn()
    return sink.events


x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
saved_conv = F.conv2d  # a reference taken before any guard, as a notebook might


class OwnMode(TorchDispatchMode):  # a student's own dispatch mode, passing every operator on
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class Wrapped(torch.Tensor):  # a student's tensor subclass, computing inside its __torch_dispatch__
    @staticmethod
    def __new__(cls, data):
        return torch.Tensor._make_wrapper_subclass(cls, data.shape, dtype=data.dtype)

    def __init__(self, data):
        self.data_ = data

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        unwrap = lambda a: a.data_ if isinstance(a, Wrapped) else a  # noqa: E731
        return func(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in (kwargs or {}).items()})


def in_own_mode():
    with OwnMode():
        F.conv2d(x, w)


def with_modes_popped():
    with _disable_current_modes():
        F.conv2d(x, w)


def backward():
    F.conv2d(x.clone().requires_grad_(), w).sum().backward()


@pytest.mark.parametrize("call, name", [
    (lambda: F.conv2d(x, w), "conv2d"),
    (lambda: torch.nn.Conv2d(3, 4, 3)(x), "conv2d"),
    (lambda: torch.conv2d(x, w), "conv2d"),
    (lambda: saved_conv(x, w, padding=1), "conv2d"),
    (lambda: torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), "convolution"),
    (lambda: F.max_pool2d(x, 2), "max_pool2d"),
    (lambda: torch.nn.AvgPool2d(2)(x), "avg_pool2d"),
    (in_own_mode, "conv2d"),  # under a mode of the student's own, which a dispatch mode guard sat below
    (with_modes_popped, "conv2d"),  # popping every dispatch mode took a dispatch mode guard off with them
    (lambda: F.conv2d(Wrapped(x), w), "conv2d"),
    (lambda: torch.vmap(lambda image: F.conv2d(image[None], w))(x), "conv2d"),
    (backward, "conv2d"),
])
def test_every_way_to_a_forbidden_operator_is_reported_by_the_name_the_call_reached(call, name):
    events = reported(call)
    assert events and events[0] == ("O", name), events
    assert all(kind == "O" for kind, _ in events), events


def test_the_operators_a_forbidden_one_runs_inside_it_are_not_reported_again():
    assert reported(lambda: F.conv2d(x, w)) == [("O", "conv2d")]  # not convolution, _convolution, mkldnn_...
    assert reported(backward) == [("O", "conv2d"), ("O", "convolution_backward")]  # each one the call reached


def conv2d_by_hand(image, kernel):
    out = torch.zeros(image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (image[i:i + kernel.shape[0], j:j + kernel.shape[1]] * kernel).sum()
    return out


def test_honest_code_reports_nothing_and_computes_the_same():
    image, kernel = torch.randn(9, 7), torch.randn(3, 2)
    sink = ListSink()
    with Guard(LIBRARY, sink, ORIGIN):
        out = conv2d_by_hand(image, kernel)
        unfolded = F.unfold(x, 3).transpose(1, 2) @ w.view(4, -1).t()
    assert sink.events == []
    assert torch.allclose(out, F.conv2d(image[None, None], kernel[None, None])[0, 0], atol=1e-5)
    assert torch.allclose(unfolded, F.conv2d(x, w).flatten(2).transpose(1, 2), atol=1e-5)


def test_the_threads_dispatch_keys_are_as_they_were_after_the_call_whatever_it_did():
    def raises():
        raise ValueError("student bug")

    with pytest.raises(ValueError):
        with Guard(LIBRARY, ListSink(), ORIGIN):
            raises()
    assert not torch._C._dispatch_tls_is_dispatch_key_included(OP_KEY)
    assert torch.allclose(F.conv2d(x, w), F.conv2d(x, w))  # and no kernel of the guard's runs outside a call


def test_a_guard_taken_off_during_the_call_says_so():
    def drops_the_key():
        torch._C._dispatch_tls_set_dispatch_key_included(OP_KEY, False)  # (a grading kernel's tripwire: see
        F.conv2d(x, w)  # test_guard_bypass.py); unseen, but the guard is missing at the end of the call

    events = reported(drops_the_key)
    assert ("T", "the library guard was removed during the call (its dispatch key or kernels)") in events


def test_a_guard_whose_kernels_were_removed_during_the_call_says_so():
    reported(lambda: None)  # the kernels exist
    library = next(iter(OP_KERNELS.libraries.values()))

    def removes_the_kernels():
        library.reset()  # reached through the heap in a notebook (flagged: test_integrity.py)

    try:
        events = reported(removes_the_kernels)
        assert ("T", "the library guard was removed during the call (its dispatch key or kernels)") in events
    finally:
        OP_KERNELS.__init__()  # registered again by the next guard


GUARD_ONLY_WHERE_FORBIDDEN = """
import torch
from autograder.kernel.kernel_side import Guard, ListSink, default_origin
from autograder.kernel.kernel_side.guard import OP_KEY
with Guard({"ops": ("conv",)}, ListSink(), default_origin()):
    pass
has = lambda name: torch._C._dispatch_has_kernel_for_dispatch_key(name, OP_KEY)
print(has("aten::convolution"), has("aten::conv2d.padding"), has("aten::slice.Tensor"), has("aten::mul.Tensor"),
      has("aten::sum"), has("aten::select.int"))
"""


def test_only_forbidden_operators_have_a_kernel_at_the_guards_key():
    """What makes a guarded student loop run at nearly its own speed: the slicing, products and sums of an honest
    convolution pass the key in C++ (a fresh process: the `torchgrade ops` tests give every operator a kernel)."""
    out = subprocess.run([sys.executable, "-c", GUARD_ONLY_WHERE_FORBIDDEN], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False", "False", "False", "False"]


def test_ops_lists_what_the_guard_sees_outermost_first_and_inside():
    names = operators("F.conv2d(x, w)")
    assert names.index("conv2d") < names.index("convolution")
    assert {"softmax", "_softmax"} <= set(operators("F.softmax(x, dim=1)"))


def test_the_python_dispatcher_cannot_route_an_operator_around_the_key():
    """An operator's Python-dispatcher cache (a plain dict) can send it to a kernel below the guard's key; the guard
    keeps the Python dispatcher off for the call, so the cache is never read."""
    from torch._dispatch.python import enable_python_dispatcher

    poisoned = [torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default]
    for op in poisoned:
        op._dispatch_cache[OP_KEY] = torch._C.DispatchKey.CompositeImplicitAutograd if op is poisoned[0] \
            else torch._C.DispatchKey.CompositeExplicitAutograd

    def routed():
        with enable_python_dispatcher():
            return F.conv2d(x, w)

    try:
        assert reported(routed)[0] == ("O", "conv2d")
        assert not torch._C._dispatch_tls_is_dispatch_key_excluded(torch._C.DispatchKey.PythonDispatcher)  # as before
    finally:
        for op in poisoned:
            op._dispatch_cache.pop(OP_KEY, None)


OPERATOR_WITHOUT_KERNEL = """
import torch, torch.nn.functional as F
from autograder.kernel.kernel_side import Guard, ListSink, default_origin, guard
register = guard._register_kernel
def refuse_conv2d(library, name, key, kernel, *rest):
    if name.startswith("conv2d"):
        raise RuntimeError("refused")
    return register(library, name, key, kernel, *rest)
guard._register_kernel = refuse_conv2d
sink = ListSink()
with Guard({"ops": ("conv2d",)}, sink, default_origin()):
    F.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3))
print("aten::conv2d" in guard.OP_KERNELS.failed, ("O", "conv2d") in sink.events)
guard._register_kernel = register  # a later look registers it: the observer is no longer needed for it
guard.OP_KERNELS.cover(("conv2d", "a_new_fragment"))
print("aten::conv2d" not in guard.OP_KERNELS.failed, not Guard({"ops": ("conv2d",)}, sink, default_origin()).ops.uncovered())
"""


def test_an_operator_the_key_cannot_see_is_seen_by_the_observer_instead():
    """Should an operator not get a kernel at the guard's key, calls forbidding it run under the process-wide
    observer, which still reports it: the guard's gap is neither a way around it nor billed to the student."""
    out = subprocess.run([sys.executable, "-c", OPERATOR_WITHOUT_KERNEL], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "True"]


ENTRY_POINTS_KEPT_ONCE = """
import torch
from autograder.kernel.kernel_side import ListSink, default_origin, load_private
probe = load_private()
conv = torch.ops.aten.conv2d.default
probe["keep_attributes"]()  # the zygote, once
table = probe["KEPT"][type(conv), "_op_dk"]
plain = "_op_dk" not in vars(conv) and conv._op_dk is table[conv] and len(table) > 100
probe["Tripwires"](ListSink(), default_origin()).install()  # each kernel
late = torch.ops.aten.conv_tbc.default  # an overload made after: kept in the same table
accessors = vars(type(conv))["_op_dk"]  # its getter and setter hand out no table as their __self__
print(plain, getattr(conv._op_dk, "__wrapped_by_torchgrade__", False), "_op_dk" not in vars(late) and late in table,
      getattr(late._op_dk, "__wrapped_by_torchgrade__", False),
      getattr(accessors.fget, "__self__", None) is None and getattr(accessors.fset, "__self__", None) is None)
"""


def test_the_zygote_moves_operators_entry_points_once_and_each_kernel_wraps_them():
    """Keeping two thousand operators' kernel-by-key entry points out of their `__dict__` is done once, in the zygote
    (it cost each kernel a hundredth of a second); a kernel's tripwires then hand out a tripwire for each, for the
    overloads made later too."""
    out = subprocess.run([sys.executable, "-c", ENTRY_POINTS_KEPT_ONCE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "True", "True"]


def test_an_operator_passed_a_number_for_a_tensor_still_runs_under_the_key():
    """C++ code may hand an operator a number where it takes a tensor (`logsumexp` passes `to` an infinity, and
    `gumbel_softmax` passes `div` a one): the call still runs, is reported, and computes what it does unguarded."""
    x = torch.randn(4, 5)
    assert {"logsumexp", "to", "masked_fill_"} <= set(operators("torch.logsumexp(x, dim=1)"))
    assert "div" in operators("F.gumbel_softmax(x, dim=1)")
    sink = ListSink()
    with Guard({"ops": ("to", "masked_fill")}, sink, ORIGIN):
        value = torch.logsumexp(x, dim=1)
    assert torch.equal(value, torch.logsumexp(x, dim=1))
    assert ("O", "to") in sink.events and ("O", "masked_fill_") in sink.events
    half = torch.randn(3, dtype=torch.float16)
    with Guard({"ops": ("add",)}, ListSink(), ORIGIN):  # a number stays a number in type promotion
        assert (half + 2.5).dtype == torch.float16 and torch.equal(half + 2.5, torch.add(half, 2.5))


EVERY_OPERATOR_KERNELED = """
import sys, threading
sys.path.insert(0, sys.argv[1])
import honest_calls
from autograder.kernel.kernel_side import Guard, ListSink, default_origin
from autograder.kernel.kernel_side.guard import OP_KERNELS

before = honest_calls.run_all()
OP_KERNELS.cover(("",))  # every operator: a kernel at the key, and the layers' a second one
outside = honest_calls.run_all()
sink = ListSink()
with Guard({"ops": ("",)}, sink, default_origin()):
    inside = honest_calls.run_all()
threaded = {}
with Guard({"ops": ("",)}, ListSink(), default_origin()):
    thread = threading.Thread(target=lambda: threaded.update(honest_calls.run_all()))
    thread.start()
    thread.join()
print(len(before), len(OP_KERNELS.names), len(OP_KERNELS.failed), len(sink.events) > 100)
for name, after in (("outside", outside), ("inside", inside), ("threaded", threaded)):
    print(name, honest_calls.differences(before, after))
"""


def test_honest_pytorch_computes_the_same_with_every_operator_given_the_guards_kernels():
    """The guard's kernels hand every call on unchanged: with a kernel at the key for every operator (and a second one
    for every layer's), the honest calls of `honest_calls.py` (layers, losses, optimisers, statistics, numbers that
    C++ code hands on as tensors, parameters made, copied and loaded, a subclass's tensors) compute the same values,
    dtypes and gradients outside a call, inside one that forbids everything, and on a thread during one."""
    out = subprocess.run([sys.executable, "-c", EVERY_OPERATOR_KERNELED, str(Path(__file__).parent)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    calls, kernels, failed, reported = lines[0].split()
    assert int(calls) > 80 and int(kernels) > 2000 and failed == "0" and reported == "True", lines[0]
    assert lines[1:] == ["outside []", "inside []", "threaded []"], out.stdout[-3000:]


def test_forbidding_a_fragment_of_detach_or_alias_breaks_no_parameter_or_subclass():
    """PyTorch makes every `nn.Parameter` of a detached tensor, and a subclass's results of an aliased one, in C++:
    a kernel of the guard's on `detach` or `alias` would tie the tensor to a plain tensor object, and PyTorch would
    refuse to make it a Parameter. A call forbidding "det" (a determinant from scratch) still makes its model, and
    is not reported for the `detach` inside; `torchgrade ops` lists a layer's making."""
    class Tagged(torch.Tensor):
        pass

    for fragment in ("det", "alias"):
        sink = ListSink()
        with Guard({"ops": (fragment,)}, sink, ORIGIN):
            model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
            moved = copy.deepcopy(model).to(torch.float64)
            tagged = torch.ones(2).as_subclass(Tagged) * 2
        assert isinstance(moved[0].weight, torch.nn.Parameter) and type(tagged) is Tagged
        assert sink.events == [], (fragment, sink.events)
    sink = ListSink()
    with Guard({"ops": ("det",)}, sink, ORIGIN):
        torch.det(torch.eye(3))
    assert ("O", "det") in sink.events
    assert "uniform_" in operators("nn.Linear(3, 2)")


def test_a_number_handed_on_as_a_tensor_goes_the_way_its_operator_takes_it():
    """A number C++ code hands an operator as a tensor is made a tensor again by the operator's Python entry where it
    takes numbers as tensors (`add`); through the overload that takes a Scalar there otherwise (`fmod_.Tensor` as
    `fmod_.Scalar`: `det` hands it the sign of its permutation); or, where no overload does, as a 0-dim tensor of
    the dtype the number promotes to with the call's tensors."""
    from autograder.kernel.kernel_side.guard import Onward
    from autograder.kernel.kernel_side.refs import _all_op_names, _find_op, _op_from_top

    def onward(name, overload):
        overloads = [full for full in _all_op_names() if full.partition(".")[0] == name]
        return Onward(_find_op(name, overload), _op_from_top(name, overload)[0], overloads)

    assert onward("aten::add", "Tensor").numbers_taken and not onward("aten::fmod_", "Tensor").numbers_taken
    x = torch.arange(6, dtype=torch.float32)
    fmod = onward("aten::fmod_", "Tensor")
    assert torch.equal(fmod(None, (x.clone(), 4), {}), torch.fmod(x, 4))
    assert fmod.siblings == {frozenset({"other"}): fmod.siblings[frozenset({"other"})]} and fmod.siblings[
        frozenset({"other"})] is not None
    lerp = onward("aten::lerp", "Tensor")  # (no overload takes `end` as a Scalar)
    ints = torch.arange(4, dtype=torch.int32)
    values = lerp(None, (x[:4], 2.5, torch.full((4,), 0.5)), {})
    assert lerp.siblings[frozenset({"end"})] is None
    assert values.dtype == torch.float32 and torch.equal(values, torch.lerp(x[:4], torch.full((4,), 2.5),
                                                                             torch.full((4,), 0.5)))
    where = onward("aten::where", "self")
    assert torch.equal(where(None, (ints > 1, ints, 0.5), {}), torch.where(ints > 1, ints, 0.5))


COMPILED_WITH_DYNAMIC_SHAPES = """
import torch
from autograder.kernel.kernel_side import Guard, ListSink, default_origin

mean = torch.compile(lambda x: x.sum() / x.numel(), backend="eager")  # a second shape makes numel() symbolic
sink = ListSink()
with Guard({"ops": ("div",)}, sink, default_origin()):
    values = [mean(torch.ones(3)), mean(torch.arange(4.0))]
print(values[0].item(), values[1].item(), ("O", "div") in sink.events)
"""


def test_a_symbolic_number_handed_on_as_a_tensor_is_made_a_tensor_again():
    """Under torch.compile's dynamic shapes, a shape (`x.numel()`, `q.size(-1)`) is a symbolic number, which C++ code
    hands `div` where it takes a tensor: it is made a tensor again as a plain number is, and the call is reported."""
    out = subprocess.run([sys.executable, "-c", COMPILED_WITH_DYNAMIC_SHAPES], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["1.0", "1.5", "True"], out.stdout


def test_higher_order_operators_pass_the_key_during_a_call_and_are_put_back():
    """`vmap` and `grad` over an `autograd.Function` with `setup_context` (the HOP `custom_function_call`) and
    `torch.cond` looked for a Python kernel at the guard's key and failed in every guarded call; they pass it during
    the call, the operators they run are still seen, and after the call they are as PyTorch made them."""
    from torch._ops import _higher_order_ops

    class Double(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x):
            return x * 2

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    sink = ListSink()
    with Guard({"ops": ("mul",)}, sink, ORIGIN):
        batched = torch.func.vmap(Double.apply)(torch.ones(3, 2))
        gradient = torch.func.grad(lambda x: Double.apply(x).sum())(torch.ones(3))
        branch = torch.cond(torch.tensor(True), lambda x: x + 1, lambda x: x - 1, (torch.zeros(2),))
    assert torch.equal(batched, torch.full((3, 2), 2.0)) and torch.equal(gradient, torch.full((3,), 2.0))
    assert torch.equal(branch, torch.ones(2)) and ("O", "mul") in sink.events
    hop = _higher_order_ops["custom_function_call"]
    assert hop.non_fallthrough_keys.has(OP_KEY) and OP_KEY not in hop.py_kernels


def test_a_kept_kernel_that_must_leave_the_key_puts_the_rest_of_the_call_under_the_observer():
    """A kernel kept from an earlier call's fragments (`to`), re-made from the top for a number it was handed, runs
    what it runs with the key excluded: the observer then watches the rest of the call, which forbids `masked_fill`."""
    x = torch.randn(4, 5)
    with Guard({"ops": ("to",)}, ListSink(), ORIGIN):  # an earlier question: `to` keeps its kernel at the key
        torch.logsumexp(x, dim=1)
    sink = ListSink()
    guard = Guard({"ops": ("masked_fill",)}, sink, ORIGIN)
    with guard:
        value = torch.logsumexp(x, dim=1)
        observing = guard.observer.on
    assert torch.equal(value, torch.logsumexp(x, dim=1)) and observing and ("O", "masked_fill_") in sink.events


HANDLER_ATTACHED = """
import torch
import torch.nn.functional as F
from autograder.kernel.kernel_side import ListSink, default_origin
from autograder.kernel.kernel_side.guard import Guard, Tripwires

sink = ListSink()
Tripwires(sink, default_origin()).install()  # as a kernel does before its first cell
x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)


class Box(torch.Tensor):  # made with no handler: nothing trips as it is made
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, f):
        box = torch.Tensor._make_wrapper_subclass(cls, (1,), dtype=torch.float32)
        box.f = f
        return box


def handler(cls, func, types, args=(), kwargs=None):
    return args[0].f()


def in_call():  # attached during the call, taken off before it returns
    Box.__torch_dispatch__ = classmethod(handler)
    try:
        return torch.neg(Box(lambda: F.conv2d(x, w)))
    finally:
        del Box.__torch_dispatch__


def guarded(fn):  # what the call reported, and the tripwires meanwhile
    said, events = len(sink.events), ListSink()
    with Guard({"ops": ("conv2d",)}, events, default_origin()):
        value = fn()
    return value, events.events + sink.events[said:]


value, events = guarded(in_call)
print(SEP, torch.equal(value, F.conv2d(x, w)), ("O", "conv2d") in events,
      any(kind == "A" and detail.startswith("dispatch-keys") for kind, detail in events))
Box.__torch_dispatch__ = classmethod(handler)  # attached after the class was made, before the call
value, events = guarded(lambda: torch.neg(Box(lambda: F.conv2d(x, w))))
print(SEP, ("O", "conv2d") in events, ("A", "custom-op: the notebook gave the tensor subclass Box a __torch_dispatch__ "
                                           "after it was made") in events)
"""


def test_a_handler_given_to_a_tensor_subclass_after_it_was_made_is_seen(tmp_path):
    """PyTorch runs a tensor subclass's `__torch_dispatch__` with the guard's key excluded. Given to the class once it
    is made (no tripwire sees that), before a guarded call or during it (taken off again before the call returns),
    what the handler computes is still seen: a class the notebook made, or a handler that changed since its class
    was made, puts the call under the observer, and the observer seeing what the key did not is said."""
    notebook = tmp_path / "notebook.py"  # student code: a file of no library
    notebook.write_text(HANDLER_ATTACHED.replace("SEP", "'|'"))
    out = subprocess.run([sys.executable, str(notebook)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["|", "True", "True", "True", "|", "True", "True"], out.stdout


WORK_HANDED_TO_A_THREAD = """
import sys
from concurrent.futures import ThreadPoolExecutor
import torch
import torch.nn.functional as F
from autograder.kernel.kernel_side import ListSink, default_origin
from autograder.kernel.kernel_side.guard import Guard, Tripwires
from autograder.kernel.kernel_side.refs import Flags

Flags.threads = frozenset(sys._current_frames())  # the kernel's own threads
POOL = ThreadPoolExecutor(1)
POOL.submit(int).result()  # an idle thread no tripwire saw start (a library's, as asyncio's executor)
sink = ListSink()
Tripwires(sink, default_origin()).install()
x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
with Guard({"ops": ("conv2d",)}, sink, default_origin()):
    value = POOL.submit(lambda: F.conv2d(x, w)).result()  # no thread starts
print(torch.equal(value, F.conv2d(x, w)), ("O", "conv2d") in sink.events,
      any(kind == "A" and detail.startswith("dispatch-keys") for kind, detail in sink.events))
"""


def test_work_handed_to_a_thread_that_was_already_running_is_seen(tmp_path):
    """An executor's idle thread, started where no tripwire saw it, takes work handed to it during a guarded call
    without a thread starting: any thread of the kernel's that is not its own puts the call under the observer, which
    sees the operator on that thread, and says that the key did not."""
    notebook = tmp_path / "notebook.py"
    notebook.write_text(WORK_HANDED_TO_A_THREAD)
    out = subprocess.run([sys.executable, str(notebook)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"], out.stdout


def test_a_layers_operator_run_around_the_key_is_seen_below_it():
    """The operators of layers (those taking a weight, a kernel size or an output size, and no number) have a second
    kernel, below Python and autograd and on every thread: one run on another thread while the call runs, or in a
    `__torch_dispatch__` (here one of PyTorch's own subclasses, given a handler of the notebook's for the call only),
    is reported there, and the notebook flagged. Arithmetic operators keep the first line alone: a number ATen
    passes them where they take a tensor could not be handed on from below autograd."""
    import threading

    from torch.testing._internal.logging_tensor import LoggingTensor

    from autograder.kernel.kernel_side.guard import layer_operator
    from autograder.kernel.kernel_side.refs import _all_op_names

    def on_another_thread():
        box = []
        thread = threading.Thread(target=lambda: box.append(F.conv2d(x, w)))
        thread.start()
        thread.join()
        return box[0]

    def in_a_swapped_handler():
        saved = LoggingTensor.__dict__["__torch_dispatch__"]
        LoggingTensor.__torch_dispatch__ = classmethod(lambda cls, func, types, args=(), kwargs=None: F.conv2d(x, w))
        try:
            return torch.ops.aten.neg.default(LoggingTensor(torch.zeros(1)))
        finally:
            LoggingTensor.__torch_dispatch__ = saved

    for call in (on_another_thread, in_a_swapped_handler):
        sink = ListSink()
        with Guard(LIBRARY, sink, ORIGIN):
            value = call()
        assert torch.equal(value, F.conv2d(x, w))
        assert ("O", "conv2d") in sink.events or ("O", "convolution") in sink.events, (call.__name__, sink.events)
        assert any(kind == "A" and detail.startswith("dispatch-keys") for kind, detail in sink.events), sink.events
    names = _all_op_names()

    def overloads(name):
        return [full for full in names if full.partition(".")[0] == (name if "::" in name else f"aten::{name}")]

    assert layer_operator(overloads("convolution")) and layer_operator(overloads("max_pool2d"))
    assert layer_operator(overloads("mkldnn::_convolution_pointwise"))  # a weight `W`, and scalars in a list
    assert not layer_operator(overloads("div")) and not layer_operator(overloads("masked_fill"))
    assert reported(lambda: F.conv2d(x, w)) == [("O", "conv2d")]  # on the call's own thread: the first line alone


HOSTILE_HIGHER_ORDER_OPS = """
import torch
from torch._ops import HigherOrderOperator, _higher_order_ops
from autograder.kernel.kernel_side import ListSink, default_origin
from autograder.kernel.kernel_side.guard import Guard

ran = []
origin = default_origin()
with Guard({"ops": ("conv2d",)}, ListSink(), origin):  # the first look, as the zygote's warm-up makes it
    torch.ones(2) + 1


class Listening(HigherOrderOperator):  # a higher-order operator whose key set is a property of the notebook's
    @property
    def non_fallthrough_keys(self):
        ran.append("property")
        return torch._C._dispatch_keyset_full()

    @non_fallthrough_keys.setter
    def non_fallthrough_keys(self, value):
        ran.append("setter")

    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs)


class Disguised:  # not an operator at all, with its own idea of its __dict__
    def __getattribute__(self, name):
        ran.append(name)
        return object.__getattribute__(self, name)


_higher_order_ops["listening"] = Listening("listening")
_higher_order_ops["disguised"] = Disguised()
existing = _higher_order_ops["cond"]
existing.__dict__["non_fallthrough_keys"] = Disguised()  # and an operator PyTorch made, its key set replaced
ran.clear()
with Guard({"ops": ("conv2d",)}, ListSink(), origin):
    torch.ones(2) * 3
print(sorted(set(ran)))
"""


def test_no_code_a_notebook_puts_among_the_higher_order_operators_runs_as_a_call_is_set_up():
    """The guard passes its key through PyTorch's higher-order operators at each call's start: an operator the notebook
    adds to their table, with a property for its key set, or an object posing as one, is never read there (its code
    would run before the key is on, and could compute the call's answer unseen); nor is a key set it swapped in."""
    out = subprocess.run([sys.executable, "-c", HOSTILE_HIGHER_ORDER_OPS], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "[]", out.stdout
