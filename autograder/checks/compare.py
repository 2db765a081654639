"""Comparators: a student's value against the reference's, with explicit tolerances and known mistakes."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..config import Threshold
from ..kernel.probe import Call
from .core import Misconception, Verdict, failed, passed


def call_problem(call: Call, raised: Mapping[str, str] | None = None) -> Verdict | None:
    """A failed verdict when the call gave no value to compare, else None. `raised`: hints for errors, by words
    the error contains (the first that matches)."""
    if call.missing:
        return failed(f"`{call.target.split('.')[0]}` is not defined.",
                      "Run the cell that defines it, and check the spelling of the name.")
    if call.forbidden:
        used = ", ".join(call.forbidden)
        return failed(f"{call.what} used library code that this question does not allow ({used}).",
                      "Write it yourself with loops or plain tensor operations (indexing, slicing, sums).")
    if call.error:
        return failed(f"{call.what} raised {call.error}",
                      next((hint for words, hint in (raised or {}).items() if words in call.error), ""))
    return None


NO_VALUE_HINT = "Is the body still `...`, or is a `return` missing?"


def returned(call: Call, kind: str, hint: str = NO_VALUE_HINT) -> Verdict | None:
    """A failed verdict when the call gave no usable value (not defined, refused, raised, None), else None.
    `kind` says what was expected: "a tensor of labels", "a float"..."""
    problem = call_problem(call)
    if problem:
        return problem
    if call.value is None:
        return failed(f"{call.what} returned None, expected {kind}.", hint)
    return None


def returned_as(call: Call, kind: str, of_type: type | tuple[type, ...], *, device: str | None = None,
                hint: str = "", none_hint: str = NO_VALUE_HINT, raised: Mapping[str, str] | None = None
                ) -> Verdict | None:
    """A failed verdict when the call gave no value of type `of_type` (`kind` in words): not defined, refused,
    raised (hints in `raised`, as in call_problem), None (hint `none_hint`), a tensor on another device than
    `device`, or another type (hint `hint`); else None."""
    problem = call_problem(call, raised) or returned(call, kind, none_hint) or on_device(call, device)
    if problem is None and not isinstance(call.value, of_type):
        problem = failed(f"{call.what} returned {call.type}, expected {kind}.", hint)
    return problem


def student_call(st: Any, name: str, *args: Any, probe: dict[str, Any] | None = None, **kwargs: Any) -> Call:
    """`st.call(name, *args, **kwargs)`, shown in messages as that call (see `signature`); `probe` holds the
    probe's options (return_args, forbid, no_grad, ...), which are not part of it."""
    return st.call(name, *args, **kwargs, **(probe or {}), description=signature(name, *args, **kwargs))


def student_value(st: Any, name: str) -> Call:
    """The student's variable `name`, shown in messages as `name`."""
    return replace(st.value(name), description=f"`{name}`")


def value_problem(call: Call, kind: str, of_type: type | tuple[type, ...], *, missing_hint: str = "",
                  hint: str = "") -> Verdict | None:
    """A failed verdict when the student's variable (`st.value`) is not defined (hint `missing_hint`), or not of
    type `of_type` (`kind` in words, hint `hint`), e.g. still `...`; else None."""
    if call.missing:
        return failed(f"`{call.target}` is not defined.", missing_hint)
    if not isinstance(call.value, of_type):
        found = "still `...`" if call.type == "ellipsis" else f"a {call.type}"
        return failed(f"`{call.target}` is {found}, not {kind}.", hint)
    return None


def is_int(value: Any) -> bool:
    """A Python int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def known_mistakes(table: Iterable[tuple[str, str, Any]], value_of: Callable[[Any], Any]) -> list[Misconception]:
    """A table of known mistakes, rows (label, hint, key), as misconceptions: each one's wrong value is
    `value_of(key)`, e.g. `lambda m: ref.conv2d_params_variant(*args, mistake=m)`."""
    return [Misconception(label, hint, value_of(key)) for label, hint, key in table]


def on_device(call: Call, device: str | None) -> Verdict | None:
    """A failed verdict when a returned tensor is not on `device` (the inputs' device), else None."""
    if device and call.devices and any(d != device for d in call.devices):
        return failed(f"{call.what} returned a tensor on {call.devices[0]}, but its input was on {device}.",
                      "Keep results on the input's device: no .cpu(), and create new tensors with device=x.device.")
    return None


def as_number(value: Any) -> float | None:
    """A student's number, also given as a one-element tensor or numpy array; None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value.reshape(()).item())
    if type(value).__module__ == "numpy" and getattr(value, "size", 0) == 1 and value.dtype.kind in "fiu":
        return float(value.reshape(()))
    return None


def as_numbers(value: Any, length: int | None = None) -> list[float] | None:
    """A student's list or tuple of numbers (each as `as_number` accepts it), of `length` if given; else None."""
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        return None
    numbers = [as_number(v) for v in value]
    return None if None in numbers else numbers


def scalar(call: Call, expected: float, *, rtol: float = 0.0, atol: float = 1e-6,
           misconceptions: Sequence[Misconception] = (), strict: bool = False, hint: str = "") -> Verdict:
    """A number equal to `expected` within `atol + rtol·|expected|`. `strict`: a Python float only (a
    tensor gets a hint to use .item()); otherwise one-element tensors and arrays are accepted."""
    problem = returned(call, "a float")
    if problem:
        return problem
    if strict and isinstance(call.value, torch.Tensor):
        return failed(f"{call.what} returned a tensor, expected a Python float.",
                      "Turn the one-element result into a float with .item().")
    value = as_number(call.value) if not strict or not isinstance(call.value, bool) else None
    if value is None or (strict and not isinstance(call.value, (int, float))):
        return failed(f"{call.what} returned {call.type}, expected a float.",
                      "Use float(...) or .item() to turn a tensor into a number.")

    def near(a: float, b: float) -> bool:
        return abs(a - b) <= atol + rtol * abs(b)

    if near(value, expected):
        return passed(f"{call.what} is {value:.6g}.")
    for m in misconceptions:
        if near(value, m.expected):
            return failed(f"{call.what} is {value:.6g}, expected {expected:.6g}: {m.label}.", m.hint)
    return failed(f"{call.what} is {value:.6g}, expected {expected:.6g}.", hint)


def close(call: Call, expected: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-6,
          misconceptions: Sequence[Misconception] = (), device: str | None = None) -> Verdict:
    """The student's tensor equals the reference within explicit tolerances."""
    problem = call_problem(call)
    if problem:
        return problem
    actual = call.value
    if actual is None:
        return failed(f"{call.what} returned None, expected a torch.Tensor.",
                      "Is the body still `...`, or is a `return` missing?")
    if not isinstance(actual, torch.Tensor):
        kind = call.type or type(actual).__name__
        return failed(f"{call.what} returned {kind}, expected a torch.Tensor.",
                      "Return a tensor (e.g. build the output with torch.zeros and fill it in).")
    if device and call.devices and call.devices[0] != device:
        return failed(f"{call.what} returned a tensor on {call.devices[0]}, but its input was on {device}.",
                      "Create new tensors on the input's device (device=x.device).")
    if actual.dtype != expected.dtype:
        return failed(f"{call.what} returned dtype {actual.dtype}, expected {expected.dtype}.",
                      f"Keep the result in {expected.dtype}.")
    if actual.shape != expected.shape:
        diagnosis = diagnose(actual, misconceptions, rtol, atol)
        if diagnosis:
            return failed(f"{call.what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: "
                          f"{diagnosis.label}.", diagnosis.hint)
        return failed(f"{call.what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}.",
                      shape_hint(tuple(actual.shape), tuple(expected.shape)))
    if torch.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True):
        return passed(f"{call.what} matches the reference (shape {tuple(expected.shape)}).")
    diagnosis = diagnose(actual, misconceptions, rtol, atol)
    if diagnosis:
        return failed(f"{call.what} is wrong: {diagnosis.label}.", diagnosis.hint)
    return failed(f"{call.what} differs from the reference: {difference(actual, expected, rtol, atol)} "
                  f"(tolerance rtol={rtol:g}, atol={atol:g}).")


def values_close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Numbers within tolerance, tensors by allclose (same shape), sequences item by item, others equal."""
    if isinstance(b, torch.Tensor) or isinstance(a, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True))
    x, y = as_number(a), as_number(b)
    if x is not None and y is not None:
        return abs(x - y) <= atol + rtol * abs(y) or (math.isnan(x) and math.isnan(y))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_close(u, v, rtol, atol) for u, v in zip(a, b))
    return a == b


def plain(value: Any) -> Any:
    """NumPy scalars (a DataFrame's int64 cells) as Python numbers."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def mapping(call: Call, expected: dict, *, rtol: float = 1e-5, atol: float = 1e-6) -> Verdict:
    """A dict with exactly `expected`'s keys, each value close to the reference's."""
    problem = returned(call, "a dict")
    if problem:
        return problem
    got = call.value
    if not isinstance(got, dict):
        return failed(f"{call.what} returned {call.type}, expected a dict.")
    missing, extra = [k for k in expected if k not in got], [k for k in got if k not in expected]
    if missing or extra:
        return failed(f"{call.what} has keys {sorted(got)}, expected {sorted(expected)}.")
    for key, want in expected.items():
        if not values_close(got[key], want, rtol, atol):
            return failed(f"{call.what}[{key!r}] is {show(got[key])}, expected {show(want)} "
                          f"(tolerance rtol={rtol:g}, atol={atol:g}).")
    return passed(f"{call.what} matches the reference ({len(expected)} entries).")


def frame(call: Call, expected: Any, *, columns: Sequence[str] | None = None, rtol: float = 1e-5,
          atol: float = 1e-6) -> Verdict:
    """A pandas DataFrame with `columns` (default: the reference's), the same rows, cells close."""
    problem = returned(call, "a pandas DataFrame")
    if problem:
        return problem
    got = call.value
    if type(got).__name__ != "DataFrame":
        return failed(f"{call.what} returned {call.type}, expected a pandas DataFrame.")
    columns = list(columns or expected.columns)
    missing = [c for c in columns if c not in got.columns]
    if missing:
        return failed(f"{call.what} has no column(s) {', '.join(map(str, missing))} (its columns: "
                      f"{', '.join(map(str, got.columns))}).")
    if len(got) != len(expected):
        return failed(f"{call.what} has {len(got)} rows, expected {len(expected)}.")
    for i in range(len(expected)):
        for c in columns:
            g, w = plain(got[c].iloc[i]), plain(expected[c].iloc[i])
            if not values_close(g, w, rtol, atol):
                return failed(f"{call.what}: row {i}, column {c!r} is {show(g)}, expected {show(w)}.")
    return passed(f"{call.what} matches the reference ({len(expected)} rows).")


def exact(call: Call, expected: Any, *, misconceptions: Sequence[Misconception] = (), hint: str = "") -> Verdict:
    """The student's value equals the reference exactly (ints, shapes, tuples, exact tensors); `hint` for a wrong
    value that is no known mistake."""
    problem = call_problem(call)
    if problem:
        return problem
    if same(call.value, expected):
        return passed(f"{call.what} is {show(expected)}.")
    for m in misconceptions:
        if same(call.value, m.expected):
            return failed(f"{call.what} is {show(call.value)}, expected {show(expected)}: {m.label}.", m.hint)
    return failed(f"{call.what} is {show(call.value)}, expected {show(expected)}.", hint)


def equal_tensor(call: Call, expected: torch.Tensor, *, misconceptions: Sequence[Misconception] = (), hint: str = "",
                 dtype_hint: str = "", shape_hint: str = "") -> Verdict:
    """A returned tensor (checked first with `returned_as`) equal to `expected` exactly, as labels and counts are:
    its dtype (hint `dtype_hint`), its shape (`shape_hint`), its values; a wrong one is told apart from known
    mistakes, or gets `hint`."""
    got = call.value
    if got.dtype != expected.dtype:
        return failed(f"{call.what} returned dtype {got.dtype}, expected {expected.dtype}.", dtype_hint)
    if got.shape != expected.shape:
        return failed(f"{call.what} returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}.", shape_hint)
    if torch.equal(got, expected):
        return passed(f"{call.what} matches the reference (shape {tuple(expected.shape)}).")
    for m in misconceptions:
        if same(got, m.expected):
            return failed(f"{call.what} is wrong: {m.label}.", m.hint)
    return failed(f"{call.what} differs from the reference: {difference(got, expected)}.", hint)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool(torch.equal(a, b)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) in (int, float, bool, str, type(None)) and a == b


def diagnose(actual: torch.Tensor, misconceptions: Sequence[Misconception], rtol: float,
             atol: float) -> Misconception | None:
    for m in misconceptions:
        exp = m.expected
        if (isinstance(exp, torch.Tensor) and exp.shape == actual.shape and exp.dtype == actual.dtype
                and torch.allclose(actual, exp, rtol=rtol, atol=atol)):
            return m
    return None


def shape_hint(actual: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(actual) != len(expected):
        return f"Expected {len(expected)} dimensions, got {len(actual)}."
    deltas = [a - e for a, e in zip(actual, expected)]
    if all(abs(d) <= 1 for d in deltas):
        return ("The output size is off by one. Along each dimension the output has "
                "floor((size + 2*padding - kernel) / stride) + 1 positions: count the last window too, "
                "and no window may run past the (padded) input.")
    return "Work out the output size from the input size, kernel size, stride and padding before filling it in."


def difference(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> str:
    """How two same-shaped tensors differ, counted with the tolerances the comparison used."""
    if actual.numel() == 0:
        return "empty tensors differ"
    a, e = actual.double(), expected.double()
    diff = (a - e).abs().nan_to_num(nan=float("inf"))
    worst = int(diff.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), actual.shape))
    wrong = int((~torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)).sum())
    return (f"{wrong} of {actual.numel()} values differ; the largest difference is at index {index}: "
            f"got {a.flatten()[worst].item():.6g}, expected {e.flatten()[worst].item():.6g}")


def show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 12 else repr(value.tolist())
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def normal_sample(what: str, values: torch.Tensor, mean: float, std: float,
                  mistakes: Iterable[tuple[Callable[[float, float], bool], str, str]] = (), hint: str = "") -> Verdict:
    """`values` (a freshly initialised weight) look like a sample of N(mean, std²): the sample mean, the sample std
    and the share within one std of `mean` each within about six standard errors. Otherwise the first known mistake
    that fits (`mistakes`: rows (fits(sample mean, sample std), label, hint)), or `hint`."""
    n, m, s = values.numel(), float(values.mean()), float(values.std())
    near = float(((values - mean).abs() < std).double().mean())
    stats = f"mean {m:.4f}, std {s:.4f}"
    if (abs(m - mean) <= 6 * std / math.sqrt(n) + 1e-4 and abs(s - std) <= 6 * std / math.sqrt(2 * n) + 2e-4
            and abs(near - 0.6827) <= 6 * math.sqrt(0.22 / n) + 0.005):
        return passed(f"{what}: {stats}, as N({mean:g}, {std:g}²).")
    for fits, label, why in mistakes:
        if fits(m, s):
            return failed(f"{what}: {stats}: {label}.", why)
    return failed(f"{what}: {stats}, {near:.1%} within one std of {mean:g}; expected N({mean:g}, {std:g}²) "
                  "(68.3% within one std).", hint)


def first_failure(verdicts: Iterable[Verdict], summary: str) -> Verdict:
    """All cases must pass: the first failing verdict, or one passing verdict with `summary`."""
    for verdict in verdicts:
        if not verdict.passed:
            return verdict
    return passed(summary)


def every(case: Callable[..., Verdict], st: Any, ref: Any, cases: Iterable[tuple], summary: str) -> Verdict:
    """"The same result as the reference on these cases": `case(st, ref, *arguments)` for each case in
    turn, until one fails (its verdict is the answer); `summary` when all pass. Cases are made lazily, so a
    failing case stops the student from being called on the rest."""
    return first_failure((case(st, ref, *arguments) for arguments in cases), summary)


def randn(rng: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=rng)


def randint(rng: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def int_or_pair(rng: torch.Generator, low: int, high: int) -> int | tuple[int, int]:
    """A random int in [low, high], or (half the time) a pair of them, as kernel sizes, strides and paddings are
    given to torch."""
    return randint(rng, low, high) if randint(rng, 0, 1) else (randint(rng, low, high), randint(rng, low, high))


def random_pixels(rng: torch.Generator, *shape: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Random 8-bit pixel values in [0, 255], as images hold them before any scaling."""
    return torch.randint(0, 256, shape, generator=rng, dtype=dtype)


def signature(name: str, *args: Any, **kwargs: Any) -> str:
    """A readable call for messages: tensors by shape, modules as `model`, long lists shortened, e.g.
    `conv2d(tensor(2, 3, 6, 6), stride=2)`."""

    def show_arg(a: Any) -> str:
        if isinstance(a, torch.Tensor):
            return f"tensor{tuple(a.shape)}"
        if isinstance(a, torch.nn.Module):
            return "model"
        if isinstance(a, list) and len(a) > 4:
            return f"[{a[0]!r}, {a[1]!r}, ... {len(a)} items]"
        return repr(a)

    parts = [show_arg(a) for a in args] + [f"{k}={show_arg(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def accuracy(call: Call, labels: torch.Tensor, threshold: Threshold, split: str = "hidden test") -> Verdict:
    """Credit for a model's logits on a labelled split: linear from `threshold.floor` to `.full`.

    The labels never leave the grader: only the model's outputs came back from the kernel.
    """
    problem = call_problem(call)
    if problem:
        return problem
    logits = call.value
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != len(labels):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else call.type
        return failed(f"{call.what} returned {shape}; expected logits of shape ({len(labels)}, classes).",
                      "The model takes (N, 1, 28, 28) images and returns (N, 10) logits.")
    acc = float((logits.argmax(dim=1) == labels).float().mean())
    credit = threshold.credit(acc)
    message = (f"accuracy on the {split} split: {acc:.4f} (full credit from {threshold.full:g}, "
               f"partial from {threshold.floor:g})")
    hint = "" if credit >= 1 else "Train longer, tune the learning rate, or check the input scaling."
    return Verdict(credit >= 1, message, hint, fraction=credit)


def model_accuracy(st: Any, ctx: Any, name: str, threshold: str, split: str = "hidden test") -> Verdict:
    """`accuracy` of the student's trained model `name` on an MNIST test split: "public test" (the student-visible
    `data/`) or "hidden test" (the grader's), run in eval mode without gradients on the model's device; credit by
    the configuration's threshold `threshold`."""
    from .data import mnist_split

    images, labels = mnist_split(ctx.data if split == "public test" else ctx.hidden / "data", "test")
    call = st.call(name, images, no_grad=True, eval_mode=True, on_model_device=True)
    return accuracy(call, labels, ctx.threshold(threshold), split=split)


def int_answer(call, expected: int, misconceptions=(), verb: str = "returned") -> Verdict:
    """A Python int equal to `expected`, with precise words for floats, tensors and known mistakes.

    `verb` is "returned" for a function's result and "is" for a variable."""
    problem = call_problem(call)
    if problem:
        return problem
    value = call.value
    if value is None or value is Ellipsis or getattr(value, "type", None) == "ellipsis":
        return failed(f"{call.what} {verb} {'None' if value is None else '...'}, expected an int.",
                      "Is the answer still `...`, or is a `return` missing?")
    if isinstance(value, torch.Tensor):
        return failed(f"{call.what} {verb} a tensor, expected a Python int.",
                      "Convert with int(...) or .item(): sizes are plain numbers.")
    if isinstance(value, float):
        if value == expected:
            return failed(f"{call.what} {verb} {value!r}, a float; expected the int {expected}.",
                          "`/` always gives a float: use `//` (floor division) so the result is an int.")
        return failed(f"{call.what} {verb} {value!r}, expected {expected}.",
                      "The division must be rounded down and the result be an int: use `//`.")
    if isinstance(value, bool) or not isinstance(value, int):
        return failed(f"{call.what} {verb} {call.type or type(value).__name__}, expected an int.")
    if value == expected:
        return passed(f"{call.what} is {expected}.")
    for m in misconceptions:
        if m.expected != expected and value == m.expected:
            return failed(f"{call.what} is {value}, expected {expected}: {m.label}.", m.hint)
    return failed(f"{call.what} is {value}, expected {expected}.")


def tensor_tuple(call: Call, expected: Sequence[torch.Tensor], names: Sequence[str], *, rtol: float = 1e-5,
                 atol: float = 1e-6, misconceptions: Sequence[Misconception] = (), hint: str = "") -> Verdict:
    """A tuple of tensors, one per name (e.g. mean and std), each close to `expected`'s; a floating tensor of another
    precision or shape but with as many values is compared as the reference's (float64 accumulators are fine). A
    known mistake is a tuple, recognised as a whole. `hint`: for an item that is not a tensor."""
    problem = call_problem(call)
    if problem:
        return problem
    if not (isinstance(call.value, (tuple, list)) and len(call.value) == len(expected)):
        return failed(f"{call.what} returned {call.type}, expected a tuple ({', '.join(names)}) of "
                      f"{len(expected)} tensors.", f"End with `return {', '.join(names)}`.")
    parts = []
    for name, v, e in zip(names, call.value, expected):
        if not isinstance(v, torch.Tensor):
            return failed(f"{call.what}: the {name} is a {type(v).__name__}, expected a tensor of shape "
                          f"{tuple(e.shape)}.", hint)
        as_reference = v.is_floating_point() and e.is_floating_point() and v.numel() == e.numel()
        parts.append(v.to(e.dtype).reshape(e.shape) if as_reference else v)

    def agree(a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.allclose(a, b, rtol=rtol, atol=atol))

    ok = [agree(p, e) for p, e in zip(parts, expected)]
    if all(ok):
        return passed(f"{call.what} matches the reference ({', '.join(names)}).")
    for m in misconceptions:
        if all(agree(p, w) for p, w in zip(parts, m.expected)):
            return failed(f"{call.what} is wrong: {m.label}.", m.hint)
    bad = ok.index(False)
    return close(replace(call, value=parts[bad], description=f"{call.what}, the {names[bad]},"), expected[bad],
                 rtol=rtol, atol=atol)


def shape_list(call: Call, expected: list[tuple[int, ...]], children: Sequence[str]) -> Verdict:
    """A list of shape tuples, one after each of a model's direct `children` (their class names), equal to
    `expected`; the first differing child is named, and known slips (only the final shape, the input shape first,
    no batch dimension) are told apart."""
    problem = returned(call, "a list of shapes")
    if problem:
        return problem
    value = call.value
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in value):
        return failed(f"{call.what} returned {call.type or type(value).__name__}, expected a list of tuples.",
                      "Collect tuple(x.shape) after each layer in a list.")
    got = [tuple(s) for s in value]
    if not all(is_int(d) for s in got for d in s):
        return failed(f"{call.what} returned shapes that are not tuples of ints: {got[:3]}...",
                      "Use tuple(x.shape): torch.Size holds ints.")
    if got == expected:
        return passed(f"{call.what} gives {len(expected)} shapes, ending in {expected[-1]}.")
    if got == expected[-1:] and len(expected) > 1:
        return failed(f"{call.what} returned only the final shape {got[0]}; expected one shape per child "
                      f"({len(expected)}).", "Run the children one by one (`for layer in model: x = layer(x)`) "
                      "and record the shape after each.")
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return failed(f"{call.what} starts with the input shape {got[0]}; expected only the outputs of the "
                      f"{len(expected)} children.", "Record the shape after each child, not before the first.")
    if [s[1:] for s in expected] == got:
        return failed(f"{call.what} left out the batch dimension: got {got[0]}..., expected {expected[0]}....",
                      "input_shape includes the batch size; keep it in every shape (tuple(x.shape)).")
    if len(got) != len(expected):
        return failed(f"{call.what} returned {len(got)} shapes, expected {len(expected)} (one per direct child: "
                      f"{', '.join(children)}).", "Record one shape after each direct child of the Sequential.")
    i = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
    return failed(f"{call.what}: after child {i} ({children[i]}) the shape is {got[i]}, expected {expected[i]}.",
                  "Run a real forward pass through each child on a zero tensor of input_shape.")
