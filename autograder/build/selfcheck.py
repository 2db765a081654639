"""The student's self-check: `grader.check("conv2d")` inside the notebook.

Runs a question's public checks in the student's own process against reference values
recorded at assign time. Nothing here can see hidden checks or the reference itself.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("torch") is None:  # say how to get it before anything below fails to import it
    raise ModuleNotFoundError(
        "The self-check needs PyTorch. Install the CPU build (enough for every self-check) with:\n"
        "  pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu")

import html
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..kernel.spec import GRADING_ENV

if TYPE_CHECKING:
    from ..checks import Outcome
    from .assignment import Assignment

# The checks, the reference values and the probe are imported where a self-check runs, not at import: every graded
# notebook's first cell imports this module, in a grading kernel where `Grader` does nothing.


@dataclass(frozen=True)
class QuestionReport:
    """What a student sees after `grader.check(...)`: each public check, passed or why not."""

    question: str
    outcomes: tuple[Outcome, ...]
    skipped: bool = False  # in a grading kernel, where the grader runs the checks
    written: bool = False  # a written answer (kind = "manual"): a person grades it, nothing is checked

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.question}: self-check skipped while grading (the grader runs every check itself)"]
        from ..render import outcomes_text, public_summary

        if self.written:
            return [public_summary(self.question, (), written=True)]
        out = [public_summary(self.question, self.outcomes) + (" ✔" if self.passed else "")]
        out += outcomes_text(self.outcomes, "student", symbols=True)
        if self.passed:
            out.append("  (hidden checks run when your notebook is graded)")
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        return verdict_html(self.lines()[0], self.passed) + f"<pre>{html.escape(chr(10).join(self.lines()[1:]))}</pre>"


def verdict_html(line: str, passed: bool) -> str:
    """A summary line in bold, green where everything passed, red where not."""
    return f"<p style='color:{'#1a7f37' if passed else '#b42318'};font-weight:bold'>{html.escape(line)}</p>"


@dataclass(frozen=True)
class Summary:
    reports: tuple[QuestionReport, ...]

    @property
    def total(self) -> str:
        """The last line, over every question ("3 of 6 public checks passed"); none while grading."""
        if any(r.skipped for r in self.reports):
            return ""
        from ..render import public_total

        return public_total(o for r in self.reports for o in r.outcomes)

    def __repr__(self) -> str:
        return "\n\n".join([*(repr(r) for r in self.reports), *([self.total] if self.total else [])])

    def _repr_html_(self) -> str:
        total = verdict_html(self.total, all(r.passed for r in self.reports)) if self.total else ""
        return "".join(r._repr_html_() for r in self.reports) + total


class Grader:
    """Loads the public checks shipped in the student bundle (`.torchgrade/`)."""

    def __init__(self, folder: str | Path | None = None, namespace: Mapping[str, Any] | None = None):
        self.grading = os.environ.get(GRADING_ENV) == "1"  # in a grading kernel: the grader runs every check itself
        caller = inspect.currentframe().f_back
        self.namespace = namespace if namespace is not None else caller.f_globals
        self.assignment: Assignment | None = None
        self.missing: list[str] = []  # what is handed out beside the notebook and is not there
        if not self.grading:
            from .assignment import PACKED_VARIABLE, load_student_checks, missing_beside, missing_beside_text

            self.assignment = load_student_checks(*find_meta(folder, self.namespace.get(PACKED_VARIABLE)))
            self.missing = missing_beside(self.assignment.config, self.assignment.root)
            if self.missing:
                print(missing_beside_text(self.missing))

    @property
    def questions(self) -> list[str]:
        if self.assignment is None:
            return []
        return self.assignment.config.question_ids

    def check(self, question: str) -> QuestionReport:
        if self.grading:  # the student's convenience must not spend the student's grading budget
            return QuestionReport(question, (), skipped=True)
        if question not in self.questions:
            raise ConfigError(f"no question {question!r}; questions are: {', '.join(self.questions)}")
        from ..checks import Context, run_checks
        from ..kernel.probe import LocalStudent

        if any(q.id == question and q.kind == "manual" for q in self.assignment.config.questions):
            return QuestionReport(question, (), written=True)
        st = LocalStudent(self.namespace)
        ctx = Context(self.assignment.config, "cpu", None, self.assignment.root / "data")
        outcomes = tuple(run_checks(self.assignment.checks.for_question(question), st, self.assignment.reference, ctx))
        return QuestionReport(question, outcomes)

    def check_all(self) -> Summary:
        if self.grading:
            return Summary((QuestionReport("all questions", (), skipped=True),))
        return Summary(tuple(self.check(q) for q in self.questions))


def find_meta(folder: str | Path | None, packed: str | None = None) -> tuple[Path, Path]:
    """(the public checks' folder, the student's folder): `folder` or the current folder's `.torchgrade/`, else the
    files the notebook's packed cell unpacked (`packed`, its `SELFCHECK_FILES`; data stays the current folder's)."""
    from .assignment import STUDENT_META

    start = Path(folder) if folder else Path.cwd()
    for candidate in (start, start / STUDENT_META):
        if (candidate / "assignment.toml").is_file() and candidate.name == STUDENT_META:
            return candidate, candidate.parent
    if packed and not folder and (Path(packed) / STUDENT_META / "assignment.toml").is_file():
        return Path(packed) / STUDENT_META, start
    raise ConfigError(f"no public checks: run the notebook's first cell (it unpacks them), or open the notebook "
                      f"from the assignment's student folder (with its {STUDENT_META}/ folder)", start)
