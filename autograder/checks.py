"""The check API, shared by the student's self-check and the grader.

A check is a function `(st, ref, rng) -> Verdict`:
- `st` is the student side (`probe.KernelStudent` when grading, `probe.LocalStudent` in a
  self-check): `st.value(name)` and `st.call(name, *args, forbid=...)` return `Call`s;
- `ref` is the reference oracle module when grading, or a replay of the values it gave at
  assign time in a self-check;
- `rng` is a `torch.Generator` seeded from the check's name, so inputs are reproducible.

Checks are collected in an explicit `CheckSet` per assignment, as public (shipped to
students with recorded expected values) or hidden (grader only). Outcomes are data.
"""

from __future__ import annotations

import inspect
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from .config import AssignmentConfig, Threshold
from .errors import TorchgradeError
from .kernel.codec import ModuleSnapshot, Opaque, ref
from .kernel.probe import Call, Forbid, Student


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    hint: str = ""
    fraction: float | None = None  # partial credit in [0, 1]; default: 1 if passed else 0

    @property
    def score(self) -> float:
        return float(self.passed) if self.fraction is None else min(1.0, max(0.0, self.fraction))


def passed(message: str) -> Verdict:
    return Verdict(True, message)


def failed(message: str, hint: str = "") -> Verdict:
    return Verdict(False, message, hint)


@dataclass(frozen=True)
class Misconception:
    """A known wrong answer: the value a typical mistake produces, and what to say about it."""

    label: str
    hint: str
    expected: Any


@dataclass(frozen=True)
class Context:
    """What a check may need besides `st`, `ref` and `rng`: given to checks that take a 4th argument.

    `hidden` is the autograder bundle's hidden folder (hidden test data under `hidden/data`,
    the grader's own models); it is None in a student's self-check, where only public checks
    run. `data` is the student-visible data folder, in grading and in self-checks alike.
    """

    config: AssignmentConfig
    device: str = "cpu"
    hidden: Path | None = None
    data: Path | None = None  # the student-visible data folder (the notebook's `data/`)

    def threshold(self, name: str) -> Threshold:
        return self.config.threshold(name, self.device)


CheckFn = Callable[..., Verdict]


@dataclass(frozen=True)
class Check:
    name: str
    question: str
    fn: CheckFn
    public: bool
    weight: float = 1.0
    doc: str = ""


@dataclass
class CheckSet:
    """An assignment's checks, registered explicitly with `@checks.public` / `@checks.hidden`."""

    checks: list[Check] = field(default_factory=list)

    def public(self, question: str, weight: float = 1.0) -> Callable[[CheckFn], CheckFn]:
        return self._register(question, weight, public=True)

    def hidden(self, question: str, weight: float = 1.0) -> Callable[[CheckFn], CheckFn]:
        return self._register(question, weight, public=False)

    def _register(self, question: str, weight: float, public: bool) -> Callable[[CheckFn], CheckFn]:
        def add(fn: CheckFn) -> CheckFn:
            if any(c.name == fn.__name__ for c in self.checks):
                raise TorchgradeError(f"two checks are named {fn.__name__!r}")
            doc = (fn.__doc__ or "").strip().splitlines()
            self.checks.append(Check(fn.__name__, question, fn, public, weight, doc[0] if doc else ""))
            return fn

        return add

    def __add__(self, other: "CheckSet") -> "CheckSet":
        return CheckSet(self.checks + other.checks)

    def for_question(self, question: str) -> list[Check]:
        return [c for c in self.checks if c.question == question]


@dataclass(frozen=True)
class Outcome:
    """The result of one check on one submission."""

    check: str
    question: str
    public: bool
    weight: float
    score: float
    message: str
    hint: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.score >= 1.0


def check_seed(name: str, base: int) -> int:
    return (zlib.crc32(name.encode()) ^ (base * 2654435761)) % (2**31)


def run_check(check: Check, st: Student, ref: Any, base_seed: int, ctx: Context | None = None) -> Outcome:
    """Run one check; a check that raises becomes a failed outcome, never an abort."""
    rng = torch.Generator().manual_seed(check_seed(check.name, base_seed))
    start = time.perf_counter()
    try:
        wants_ctx = len(inspect.signature(check.fn).parameters) >= 4
        verdict = check.fn(st, ref, rng, ctx) if wants_ctx else check.fn(st, ref, rng)
    except Exception as exc:  # a bug or an unexpected value must not stop the other checks
        verdict = failed(f"the check could not run ({type(exc).__name__}: {exc})")
    return Outcome(check.name, check.question, check.public, check.weight, verdict.score,
                   verdict.message, verdict.hint, time.perf_counter() - start)


def run_checks(checks: Iterable[Check], st: Student, ref: Any, ctx: Context) -> list[Outcome]:
    """Public checks draw inputs from the public seed, hidden ones from the hidden seed."""
    return [run_check(c, st, ref, ctx.config.seed if c.public else ctx.config.hidden_seed, ctx) for c in checks]


# ---------------------------------------------------------------------------- comparators

def call_problem(call: Call) -> Verdict | None:
    """A failed verdict when the call gave no value to compare, else None."""
    if call.missing:
        return failed(f"`{call.target.split('.')[0]}` is not defined.",
                      "Run the cell that defines it, and check the spelling of the name.")
    if call.forbidden:
        used = ", ".join(call.forbidden)
        return failed(f"{call.what} used library code that this question does not allow ({used}).",
                      "Write it yourself with loops or plain tensor operations (indexing, slicing, sums).")
    if call.error:
        return failed(f"{call.what} raised {call.error}")
    return None


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
    return failed(f"{call.what} differs from the reference: {difference(actual, expected)} "
                  f"(tolerance rtol={rtol:g}, atol={atol:g}).")


def exact(call: Call, expected: Any, *, misconceptions: Sequence[Misconception] = ()) -> Verdict:
    """The student's value equals the reference exactly (ints, shapes, tuples, exact tensors)."""
    problem = call_problem(call)
    if problem:
        return problem
    if same(call.value, expected):
        return passed(f"{call.what} is {show(expected)}.")
    for m in misconceptions:
        if same(call.value, m.expected):
            return failed(f"{call.what} is {show(call.value)}, expected {show(expected)}: {m.label}.", m.hint)
    return failed(f"{call.what} is {show(call.value)}, expected {show(expected)}.")


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


def difference(actual: torch.Tensor, expected: torch.Tensor) -> str:
    if actual.numel() == 0:
        return "empty tensors differ"
    a, e = actual.double(), expected.double()
    diff = (a - e).abs().nan_to_num(nan=float("inf"))
    worst = int(diff.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), actual.shape))
    wrong = int((~torch.isclose(a, e, rtol=1e-5, atol=1e-6, equal_nan=True)).sum())
    return (f"{wrong} of {actual.numel()} values differ; the largest difference is at index {index}: "
            f"got {a.flatten()[worst].item():.6g}, expected {e.flatten()[worst].item():.6g}")


def show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.numel() > 12 else repr(value.tolist())
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def first_failure(verdicts: Iterable[Verdict], summary: str) -> Verdict:
    """All cases must pass: the first failing verdict, or one passing verdict with `summary`."""
    for verdict in verdicts:
        if not verdict.passed:
            return verdict
    return passed(summary)


def randn(rng: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=rng)


def randint(rng: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def signature(name: str, *args: Any, **kwargs: Any) -> str:
    """A readable call for messages: tensors shown by shape, e.g. `conv2d(x (2, 3, 6, 6), stride=2)`."""

    def show_arg(a: Any) -> str:
        if isinstance(a, torch.Tensor):
            return f"tensor{tuple(a.shape)}"
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


def module_snapshot(model: torch.nn.Module) -> Any:
    """The same `ModuleSnapshot` the probe returns for a student-side module, for a grader-side one."""
    from .kernel import codec, kernel_side

    return codec.from_plain(kernel_side.to_plain(model))


def state_unchanged(what: str, before: Any, after: Any, mode: bool = True, hooks: bool = True) -> Verdict:
    """A call left a module's parameters and buffers (and, if asked, train/eval mode and hooks) as they were."""
    if not hasattr(after, "state"):
        return failed(f"{what}: the model did not come back from the call.")
    changed = [k for k in before.state if k not in after.state or not torch.equal(before.state[k], after.state[k])]
    if changed:
        return failed(f"{what} changed the model's parameters or buffers ({', '.join(changed[:4])}).",
                      "Run the forward pass in eval mode under torch.no_grad(), and restore what you change.")
    if mode and before.training != after.training:
        return failed(f"{what} left the model in {'train' if after.training else 'eval'} mode; it was in "
                      f"{'train' if before.training else 'eval'} mode.", "Restore the mode you found: "
                      "remember model.training before, and call model.train(was_training) after.")
    if hooks and before.hooks != after.hooks:
        return failed(f"{what} left hooks on the model: {after.hooks} (before: {before.hooks}).",
                      "Keep the handle that register_forward_hook returns and call handle.remove().")
    return passed(f"{what} left the model as it was.")


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
