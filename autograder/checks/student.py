"""Calling the student: a function or variable by name, shown in messages as the call, and the verdicts for calls
that gave no usable value (not defined, refused, raised, None, another type or device)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch

from ..kernel.probe import Call
from .core import Verdict, failed


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


def on_device(call: Call, device: str | None) -> Verdict | None:
    """A failed verdict when a returned tensor is not on `device` (the inputs' device), else None."""
    if device and call.devices and any(d != device for d in call.devices):
        return failed(f"{call.what} returned a tensor on {call.devices[0]}, but its input was on {device}.",
                      "Keep results on the input's device: no .cpu(), and create new tensors with device=x.device.")
    return None


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


def student_call(st: Any, name: str, *args: Any, probe: dict[str, Any] | None = None, **kwargs: Any) -> Call:
    """`st.call(name, *args, **kwargs)`, shown in messages as that call (see `signature`); `probe` holds the
    probe's options (return_args, forbid, no_grad, ...), which are not part of it."""
    return st.call(name, *args, **kwargs, **(probe or {}), description=signature(name, *args, **kwargs))


def student_value(st: Any, name: str) -> Call:
    """The student's variable `name`, shown in messages as `name`."""
    return replace(st.value(name), description=f"`{name}`")


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
