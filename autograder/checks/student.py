"""Calling the student: a function or variable by name, shown in messages as the call, and the verdicts for calls
that gave no usable value (not defined, refused, raised, None, another type or device)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

import torch

from ..kernel.probe import Call, Student
from .core import Verdict, failed


@dataclass(frozen=True)
class Undefined(Call):
    """A name that is not defined because a cell that would have defined it raised an error: `cell` says which
    cell, and its error."""

    cell: str = ""
    cell_error: str = ""  # that cell's error: "NameError: name 'x' is not defined"


def undefined(call: Call, hint: str = "Run the cell that defines it, and check the spelling of the name.") -> Verdict:
    """The verdict for a name that is not defined: the failed cell that would have defined it, if any, else `hint`."""
    name = call.target.split(".")[0]
    if isinstance(call, Undefined) and call.cell:
        return failed(f"`{name}` is not defined: the cell that defines it failed, {call.cell}.",
                      failed_cell_hint(call.cell_error))
    return failed(f"`{name}` is not defined.", hint)


def failed_cell_hint(error: str) -> str:
    """What to do about a cell that raised `error` ("ModuleNotFoundError: No module named 'x'"), by its kind."""
    kind = error.split(":", 1)[0].strip()
    why = {
        "ModuleNotFoundError": "a module that is not installed where the notebook is graded cannot be imported (use "
                               "torch, numpy, pandas and the standard library).",
        "NameError": "it uses a name that is not defined when it runs (a typo, or a name defined in a cell below it "
                     "or in a cell that failed). Run the notebook from the top.",
    }.get(kind)
    if kind == "ImportError" and "cannot import name" in error:
        why = "that module has no such name (check its spelling, and which module it comes from)."
    return f"Fix that cell's error so the whole cell runs: {why}" if why else "Fix that cell's error so the whole cell runs."


# the probe's words when a method was called on what a call returned, and that was None (a body still `...`)
CALLED_ON_NONE = "AttributeError: NoneType has no method "


def call_problem(call: Call, raised: Mapping[str, str] | None = None) -> Verdict | None:
    """A failed verdict when the call gave no value to compare, else None. `raised`: hints for errors, by words
    the error contains (the first that matches)."""
    if call.missing:
        return undefined(call)
    if call.forbidden:
        used = ", ".join(call.forbidden)
        return failed(f"{call.what} used library code that this question does not allow ({used}).",
                      "Write it yourself with loops or plain tensor operations (indexing, slicing, sums).")
    if call.error and call.error.startswith(CALLED_ON_NONE):
        return failed(f"{call.what}: `{call.target}` returned None.", NO_VALUE_HINT)
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
        return undefined(call, missing_hint)
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


def defined_names(source: str) -> set[str]:
    """The names a cell's code defines at its top level (functions, classes, assignments, imports); IPython's
    `%magic` and `!shell` lines are left out, and code that does not parse is read line by line."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        found = re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*(?::[^=\n]*)?=(?!=)", code, re.M)
        return {name for pair in found for name in pair if name}
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


@dataclass
class ExplainedStudent:
    """The student side, which knows the cells that raised errors while the notebook ran: a name one of them would
    have defined, and that is not defined, comes back as `Undefined`, naming that cell and its error."""

    student: Student
    failed_cells: Mapping[str, tuple[str, str]]  # name -> ("cell 2 (import prettytable) raised ModuleNotFoundError:
    # No module named 'prettytable'", "ModuleNotFoundError: No module named 'prettytable'")

    @classmethod
    def of(cls, student: Student, cells: Iterable[tuple[str, ...]]) -> "ExplainedStudent":
        """`cells`: (source, what happened[, its error]) of each cell that raised, in the order they ran; the first
        one that would have defined a name is named for it."""
        failed_cells: dict[str, tuple[str, str]] = {}
        for source, what, *error in cells:
            for name in defined_names(source):
                failed_cells.setdefault(name, (what, error[0] if error else what.rsplit(" raised ", 1)[-1]))
        return cls(student, failed_cells)

    @property
    def device(self) -> str:
        return self.student.device

    def value(self, name: str) -> Call:
        return self.explained(self.student.value(name))

    def call(self, target: str, *args: Any, **kwargs: Any) -> Call:
        return self.explained(self.student.call(target, *args, **kwargs))

    def explained(self, call: Call) -> Call:
        cell = self.failed_cells.get(call.target.split(".")[0]) if call.missing else None
        return Undefined(**vars(call), cell=cell[0], cell_error=cell[1]) if cell else call

    def __getattr__(self, name: str) -> Any:  # what else the student side offers (timeout, ...)
        if name == "student":  # not set yet (copy, pickle)
            raise AttributeError(name)
        return getattr(self.student, name)
