"""Numbers and plain values: a student's int or float against the reference's, and the value helpers every comparator
shares (equality, closeness, how a value is shown in a message)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..kernel.probe import Call
from .core import Misconception, Verdict, failed, passed
from .student import call_problem, returned


def is_int(value: Any) -> bool:
    """A Python int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


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


def plain(value: Any) -> Any:
    """NumPy scalars (a DataFrame's int64 cells) as Python numbers."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


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


def show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 12 else repr(value.tolist())
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


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
        if near(value, m.value()):
            return failed(f"{call.what} is {value:.6g}, expected {expected:.6g}: {m.label}.", m.hint)
    return failed(f"{call.what} is {value:.6g}, expected {expected:.6g}.", hint)


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
        if m.value() != expected and value == m.value():
            return failed(f"{call.what} is {value}, expected {expected}: {m.label}.", m.hint)
    return failed(f"{call.what} is {value}, expected {expected}.")
