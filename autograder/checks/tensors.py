"""Tensors: a student's tensor (or tuple of tensors) against the reference's, with explicit tolerances, its shape,
known mistakes, dtype and device told apart."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from ..kernel.probe import Call
from .core import Misconception, Verdict, failed, passed
from .mistakes import diagnose
from .student import NO_VALUE_HINT, call_problem, on_device


def close(call: Call, expected: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-6,
          misconceptions: Sequence[Misconception] = (), device: str | None = None) -> Verdict:
    """The student's tensor equals the reference within explicit tolerances. The most telling verdict wins: no
    tensor, then its shape, then its values (a known mistake named), then its dtype, then its device (`device`: the
    inputs' device), so a float64 result of a known mistake hears about the mistake."""
    problem = call_problem(call)
    if problem:
        return problem
    actual = call.value
    if actual is None:
        return failed(f"{call.what} returned None, expected a torch.Tensor.", NO_VALUE_HINT)
    if not isinstance(actual, torch.Tensor):
        kind = call.type or type(actual).__name__
        return failed(f"{call.what} returned {kind}, expected a torch.Tensor.",
                      "Return a tensor (e.g. build the output with torch.zeros and fill it in).")
    if actual.shape != expected.shape:
        diagnosis = diagnose(actual, misconceptions, rtol, atol)
        if diagnosis:
            return failed(f"{call.what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: "
                          f"{diagnosis.label}.", diagnosis.hint)
        return failed(f"{call.what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}.",
                      shape_hint(tuple(actual.shape), tuple(expected.shape)))
    if not torch.allclose(actual.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True):
        diagnosis = diagnose(actual, misconceptions, rtol, atol)
        if diagnosis:
            return failed(f"{call.what} is wrong: {diagnosis.label}.", diagnosis.hint)
        return failed(f"{call.what} differs from the reference: {difference(actual, expected, rtol, atol)} "
                      f"(tolerance rtol={rtol:g}, atol={atol:g}).")
    if actual.dtype != expected.dtype:
        return failed(f"{call.what} returned dtype {actual.dtype}, expected {expected.dtype}.", dtype_hint(expected))
    return on_device(call, device) or passed(f"{call.what} matches the reference (shape {tuple(expected.shape)}).")


def dtype_hint(expected: torch.Tensor) -> str:
    """What to do about a result of another dtype than `expected`'s."""
    if expected.dtype == torch.float64:
        return ("The input was float64 and the result must be too: create new tensors with dtype=x.dtype (torch.zeros"
                "(..., dtype=x.dtype, device=x.device)), not a fixed float32, and do not call .float().")
    return f"Keep the result in {expected.dtype}."


def equal_tensor(call: Call, expected: torch.Tensor, *, misconceptions: Sequence[Misconception] = (), hint: str = "",
                 dtype_hint: str = "", shape_hint: str = "") -> Verdict:
    """A returned tensor (checked first with `returned_as`) equal to `expected` exactly, as labels and counts are:
    its shape (hint `shape_hint`), its values (a wrong one told apart from known mistakes, or given `hint`), then its
    dtype (hint `dtype_hint`)."""
    got = call.value
    if got.shape != expected.shape:
        return failed(f"{call.what} returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}.", shape_hint)
    if not torch.equal(got.double(), expected.double()):
        for m in misconceptions:
            wrong = m.value()
            if isinstance(wrong, torch.Tensor) and wrong.shape == got.shape and torch.equal(got.double(),
                                                                                          wrong.double()):
                return failed(f"{call.what} is wrong: {m.label}.", m.hint)
        return failed(f"{call.what} differs from the reference: {difference(got, expected)}.", hint)
    if got.dtype != expected.dtype:
        return failed(f"{call.what} returned dtype {got.dtype}, expected {expected.dtype}.", dtype_hint)
    return passed(f"{call.what} matches the reference (shape {tuple(expected.shape)}).")


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

    def agree(a: torch.Tensor, b: torch.Tensor, nan: bool = False) -> bool:  # nan: NaN where a known mistake has it
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.allclose(a, b, rtol=rtol, atol=atol,
                                                                                   equal_nan=nan))

    ok = [agree(p, e) for p, e in zip(parts, expected)]
    if all(ok):
        return passed(f"{call.what} matches the reference ({', '.join(names)}).")
    for m in misconceptions:
        if all(agree(p, w, nan=True) for p, w in zip(parts, m.value())):
            return failed(f"{call.what} is wrong: {m.label}.", m.hint)
    bad = ok.index(False)
    return close(replace(call, value=parts[bad], description=f"{call.what}, the {names[bad]},"), expected[bad],
                 rtol=rtol, atol=atol)


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
