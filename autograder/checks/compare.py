"""Comparators for structured values: exact values, dicts, DataFrames, lists of shapes; several cases in one check."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from ..kernel.probe import Call
from .core import Misconception, Verdict, failed, passed
from .numbers import is_int, plain, same, show, values_close
from .student import call_problem, returned


def exact(call: Call, expected: Any, *, misconceptions: Sequence[Misconception] = (), hint: str = "") -> Verdict:
    """The student's value equals the reference exactly (ints, shapes, tuples, exact tensors); `hint` for a wrong
    value that is no known mistake."""
    problem = call_problem(call)
    if problem:
        return problem
    if same(call.value, expected):
        return passed(f"{call.what} is {show(expected)}.")
    for m in misconceptions:
        if same(call.value, m.value()):
            return failed(f"{call.what} is {show(call.value)}, expected {show(expected)}: {m.label}.", m.hint)
    return failed(f"{call.what} is {show(call.value)}, expected {show(expected)}.", hint)


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
