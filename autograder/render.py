"""One way to show outcomes, for two audiences: the CLI, the self-check, feedback files and `assign`.

- `student`: public checks in full; for hidden checks, the check's name and description, whether it
  passed, and its hint. Never a hidden check's message, which may quote a hidden input or an
  expected value. A check the grader could not run is said to be the grader's problem.
- `instructor`: everything, tracebacks of checks that could not run included.
"""

from __future__ import annotations

from typing import Iterable

from .outcomes import Outcome

AUDIENCES = ("student", "instructor")
MARKS = {"passed": "PASS", "partial": "PART", "failed": "FAIL", "error": "ERROR"}
SYMBOLS = {"passed": "✔", "partial": "◐", "failed": "✘", "error": "!"}


def outcome_lines(o: Outcome, audience: str = "student", symbols: bool = False, hint: bool = True) -> list[str]:
    """One outcome: a head line, and indented hint (unless `hint` is false) or traceback lines."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}; known: {', '.join(AUDIENCES)}")
    mark = SYMBOLS[o.status] if symbols else f"[{MARKS[o.status]}]"
    hidden = not o.public
    if o.status == "error" and o.phase == "data" and o.public and audience == "student":  # what is missing, said
        return [f"{mark} {o.check}: {o.message}"]  # (no hidden input)
    if o.status == "error" and audience == "student":
        counts = ("it counts as zero until your instructor has looked at it" if o.counted
                  else "it is left out of your score until your instructor has looked at it")
        return [f"{mark} {o.check}{' (hidden)' if hidden else ''}: the grader could not run this check; {counts}"]
    if hidden and audience == "student":
        text = o.doc or "hidden check"
        head = f"{mark} {o.check} (hidden): {text}"
    else:
        head = f"{mark} {o.check}{' (hidden)' if hidden else ''}: {o.message}"  # named: two checks may call alike
    lines = [head]
    if hint and o.hint and o.status != "passed":
        lines.append(f"    hint: {o.hint}")
    if o.status == "error" and audience == "instructor" and o.detail:
        lines += [f"    {line}" for line in o.detail.rstrip().splitlines()]
    return lines


def outcomes_text(outcomes: Iterable[Outcome], audience: str = "student", indent: str = "  ",
                  symbols: bool = False) -> list[str]:
    """Outcomes one after the other; a hint several of them share is shown once, under the first."""
    lines, shown = [], set()
    for o in outcomes:
        lines += [indent + line for line in outcome_lines(o, audience, symbols, hint=o.hint not in shown)]
        if o.status != "passed":
            shown.add(o.hint)
    return lines


WRITTEN = "a written answer, graded by your instructor (nothing to check here)"


def public_summary(question: str, outcomes: Iterable[Outcome], written: bool = False) -> str:
    if written:
        return f"{question}: {WRITTEN}"
    outcomes = list(outcomes)
    n_ok = sum(o.passed for o in outcomes)
    return f"{question}: {n_ok}/{len(outcomes)} public checks passed"


def public_total(outcomes: Iterable[Outcome], ran_to_end: bool = True) -> str:
    """The self-check's last line, over every question: "all of 6 public checks passed", "3 of 6 ..."."""
    outcomes = list(outcomes)
    if not outcomes:
        return "no public checks" + ("" if ran_to_end else " (the notebook did not run to its end)")
    n_ok = sum(o.passed for o in outcomes)
    everything = ran_to_end and n_ok == len(outcomes)
    return (f"{'all' if everything else n_ok} of {len(outcomes)} public checks passed"
            f"{'' if ran_to_end else ' (the notebook did not run to its end)'}")
