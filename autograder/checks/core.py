"""The check API, shared by the student's self-check and the grader.

A check is a function `(st, ref, rng) -> Verdict`, optionally taking `ctx` (by that name):
- `st` is the student side (`kernel.probe.KernelStudent` when grading, `kernel.probe.LocalStudent` in
  a self-check): `st.value(name)` and `st.call(name, *args, forbid=...)` return `Call`s;
- `ref` is the reference oracle module when grading, or a replay of the values it gave at
  assign time in a self-check;
- `rng` is a `torch.Generator` seeded from the check's name, so inputs are reproducible;
- `ctx` (`Context`): the device, the configuration and its thresholds, the data folders.

Checks are collected in an explicit `CheckSet` per assignment, as public (shipped to
students with recorded expected values) or hidden (grader only). Outcomes are data, with a
status that tells the student's failure (`failed`, `partial`) from the grader's (`error`).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from ..config import AssignmentConfig, Threshold
from ..errors import TorchgradeError
from ..outcomes import Outcome, status_of
from ..kernel.probe import ProbeFault, Student
from .data import MissingData


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


_EVERY_MISTAKE = contextvars.ContextVar("torchgrade_every_mistake", default=False)


@contextlib.contextmanager
def every_mistake_computed() -> Iterator[None]:
    """Within it, `Misconception.later` computes at once: the build records every reference value a public check
    asks for, the mistakes' included, so that a self-check can replay them for a wrong answer."""
    token = _EVERY_MISTAKE.set(True)
    try:
        yield
    finally:
        _EVERY_MISTAKE.reset(token)


@dataclass(frozen=True)
class Misconception:
    """A known wrong answer: the value a typical mistake produces, and what to say about it. `Misconception.later`
    computes the value only if a wrong answer is compared with it (most answers are right, and a check may list many
    mistakes: computing each one's value ahead cost the convolution checks a tenth of their own time)."""

    label: str
    hint: str
    expected: Any
    compute: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def later(cls, label: str, hint: str, compute: Callable[[], Any]) -> "Misconception":
        if _EVERY_MISTAKE.get():  # recording the reference for the self-check: it may need any of them
            return cls(label, hint, compute())
        return cls(label, hint, None, compute)

    def value(self) -> Any:
        """The mistake's value (computed on first use, once, for a `later` one)."""
        if self.compute is not None:
            object.__setattr__(self, "expected", self.compute())
            object.__setattr__(self, "compute", None)
        return self.expected


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


def refuse_unknown_parameters(fn: Callable, what: str) -> None:
    """Checks and figures get their arguments by name, from PARAMETERS: anything else is refused at load time."""
    unknown = sorted(set(inspect.signature(fn).parameters) - set(PARAMETERS))
    if unknown:
        raise TorchgradeError(f"{what} takes {', '.join(unknown)}: it may take some of {', '.join(PARAMETERS)}, "
                              "by name")


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
            doc = (fn.__doc__ or "").strip().splitlines()
            self.add(Check(fn.__name__, question, fn, public, weight, doc[0] if doc else ""))
            return fn

        return add

    def add(self, check: Check) -> None:
        if any(c.name == check.name for c in self.checks):
            raise TorchgradeError(f"two checks are named {check.name!r}")
        refuse_unknown_parameters(check.fn, f"check {check.name!r}")
        self.checks.append(check)

    def __add__(self, other: "CheckSet") -> "CheckSet":
        merged = CheckSet(list(self.checks))
        for check in other.checks:
            merged.add(check)
        return merged

    def for_question(self, question: str) -> list[Check]:
        return [c for c in self.checks if c.question == question]

    def validate(self, question_ids: Iterable[str], where: Path | str | None = None) -> None:
        """Every check belongs to a question of the configuration (a misspelt id would drop it silently)."""
        known = set(question_ids)
        stray = sorted({f"{c.name} ({c.question!r})" for c in self.checks if c.question not in known})
        if stray:
            raise TorchgradeError(f"checks registered under questions the configuration does not have: "
                                  f"{', '.join(stray)}; questions are {', '.join(sorted(known))}", where)


def check_seed(name: str, base: int) -> int:
    return (zlib.crc32(name.encode()) ^ (base * 2654435761)) % (2**31)


PARAMETERS = ("st", "ref", "rng", "ctx")
DATA_HINT = "is the data/ folder handed out with the notebook beside it?"


def run_check(check: Check, st: Student, ref: Any, base_seed: int, ctx: Context | None = None) -> Outcome:
    """Run one check, its arguments given by parameter name; a check that raises is an `error` outcome
    (a fault of the grader or the check), never an abort of the others."""
    rng = torch.Generator().manual_seed(check_seed(check.name, base_seed))
    given = {"st": st, "ref": ref, "rng": rng, "ctx": ctx}
    start = time.perf_counter()
    try:
        verdict = check.fn(**{name: given[name] for name in inspect.signature(check.fn).parameters})
    except MissingData as exc:  # not the check's fault, nor the student's: said as it is
        return Outcome(check.name, check.question, check.public, check.weight, 0.0,
                       f"could not run: {exc.message} ({DATA_HINT})", "",
                       time.perf_counter() - start, "error", traceback.format_exc(limit=8)[-4000:], check.doc,
                       phase="data")
    except Exception as exc:  # a bug or an unexpected value must not stop the other checks
        return Outcome(check.name, check.question, check.public, check.weight, 0.0,
                       f"the grader could not run this check ({type(exc).__name__}: {str(exc)[:300]})", "",
                       time.perf_counter() - start, "error", traceback.format_exc(limit=8)[-4000:], check.doc,
                       phase="probe" if isinstance(exc, ProbeFault) else "check")
    status = status_of(verdict.score)
    return Outcome(check.name, check.question, check.public, check.weight, verdict.score, verdict.message,
                   verdict.hint, time.perf_counter() - start, status, "", check.doc)


def run_checks(checks: Iterable[Check], st: Student, ref: Any, ctx: Context) -> list[Outcome]:
    """Public checks draw inputs from the public seed, hidden ones from the hidden seed."""
    return [run_check(c, st, ref, ctx.config.seed if c.public else ctx.config.hidden_seed, ctx) for c in checks]
