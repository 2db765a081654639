"""`torchgrade validate`: everything that proves an assignment, for an instructor outside this repository.

Straight line: read `examples/expected.toml` → `assign`'s proof (build, solution full marks, blank zero, the
self-check replayed on both; every feedback figure drawn for the solution) → grade each example, replaying the student's self-check on it too → compare each
with its entry. Every fault becomes a `Problem` naming the file, check or example at fault; `validate` exits
non-zero when there is one. `tests/test_golden.py` compares the shipped examples with the same functions
(`example_problems`, `expected_problems`).

`expected.toml` holds one table per example (the file's stem; `solution` and `blank` are the notebooks `assign`
builds): the points per question, and optionally `[<example>.diagnoses]`, words the feedback of a question must
contain (docs/expected-toml.md).
"""

from __future__ import annotations

import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..build.assignment import CHECKS_DIR, load_assignment
from ..config import AssignmentConfig, GradeSettings
from ..errors import TorchgradeError
from ..kernel.isolation import trusted_isolation
from ..outcomes import SubmissionResult
from .proof import BuildReport, assign, grade_with_self_check, self_check_errors

EXAMPLES_DIR = "examples"
EXPECTED_FILE = "expected.toml"
BUILT = ("solution", "blank")  # examples `assign` builds: no file in examples/
DIAGNOSES = "diagnoses"
TOLERANCE = 0.01  # points


@dataclass(frozen=True)
class Problem:
    where: str  # the file, example or check at fault
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ValidationReport:
    name: str
    problems: list[Problem] = field(default_factory=list)
    results: dict[str, SubmissionResult] = field(default_factory=dict)  # example → its grade
    build: BuildReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(source: Path, out: Path | None = None, settings: GradeSettings | None = None) -> ValidationReport:
    """Prove the assignment at `source` and grade its examples against `examples/expected.toml`; the bundles go to
    `out` (default: a temporary folder)."""
    source = Path(source).resolve()
    settings = settings or GradeSettings(isolation=trusted_isolation())
    config = load_assignment(source).config
    report = ValidationReport(config.name)
    expected_path = source / EXAMPLES_DIR / EXPECTED_FILE
    expected = read_expected(expected_path, report.problems)
    report.problems += expected_problems(expected, example_files(source), config, expected_path)
    with tempfile.TemporaryDirectory(prefix="torchgrade-validate-") as tmp:
        out = Path(out) if out else Path(tmp)
        try:
            report.build = assign(source, out, settings)
        except TorchgradeError as exc:
            report.problems.append(Problem(f"{source} (assign's proof)", exc.message))
            return report
        build = report.build
        report.results["solution"], report.results["blank"] = build.solution, build.blank
        report.problems += figure_problems(build.solution, source)
        for path in example_files(source).values():
            result, replayed = grade_with_self_check(path, build.autograder_dir, build.student_dir, settings)
            report.results[path.stem] = result
            if message := self_check_errors(replayed, f"example {path.name}"):
                report.problems.append(Problem(str(path), message))
    for example, result in report.results.items():
        if example in expected:
            where = str(source / EXAMPLES_DIR / f"{example}.ipynb") if example not in BUILT else \
                f"{expected_path} [{example}]"
            report.problems += [Problem(where, p) for p in example_problems(result, expected[example])]
    return report


def figure_problems(solution: SubmissionResult, source: Path) -> list[Problem]:
    """Each feedback figure (`checks/figures.py`) the solution's grading could not draw: one that raised, ran out of
    time or drew too large a PNG is left out of every student's feedback. (A figure that returns None for the
    solution draws nothing, by its own choice.)"""
    where = str(source / CHECKS_DIR / "figures.py")
    return [Problem(where, f"figure {f['name']} ({f['question']}) is not drawn for the solution: {f['error']}")
            for f in solution.figures if f.get("error")]


def example_files(source: Path) -> dict[str, Path]:
    """The example submissions shipped with the assignment: `examples/*.ipynb`, by stem."""
    return {p.stem: p for p in sorted((source / EXAMPLES_DIR).glob("*.ipynb"))}


def read_expected(path: Path, problems: list[Problem]) -> dict:
    """`expected.toml`'s tables; a missing or unreadable file is a problem (and no table)."""
    if not path.is_file():
        problems.append(Problem(str(path), "missing: it lists the points each example must score (at least "
                                           "`[solution]` and `[blank]`; docs/expected-toml.md)"))
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), f"not TOML: {exc}"))
        return {}


def expected_problems(expected: dict, files: dict[str, Path], config: AssignmentConfig, path: Path) -> list[Problem]:
    """What is wrong with `expected.toml` itself: examples without an entry or entries without an example, unknown
    questions, points out of range, every question not listed."""
    problems = []
    for name in sorted(set(files) - set(expected)):
        problems.append(Problem(str(path), f"example {files[name].name} has no [{name}] table"))
    for name in sorted(set(expected) - set(files) - set(BUILT)):
        problems.append(Problem(str(path), f"[{name}] names no example: there is no examples/{name}.ipynb"))
    for name in BUILT:
        if name not in expected:
            problems.append(Problem(str(path), f"no [{name}] table (the {name} notebook `assign` builds)"))
    points = {q.id: q.points for q in config.questions if q.kind != "manual"}
    written = [q.id for q in config.questions if q.kind == "manual"]  # a person grades them: no example's points
    for name, entry in expected.items():
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), f"{name} must be a table [{name}]"))
            continue
        scored = {k: v for k, v in entry.items() if k != DIAGNOSES and k not in written}  # theirs: ignored
        for question in sorted(set(scored) - set(points)):
            problems.append(Problem(str(path), f"[{name}] {question}: no such question (questions: "
                                               f"{', '.join([*points, *written])})"))
        for question in sorted(set(points) - set(scored)):
            problems.append(Problem(str(path), f"[{name}] has no points for question {question}"))
        for question, value in scored.items():
            if question in points and not (isinstance(value, (int, float)) and 0 <= value <= points[question]):
                problems.append(Problem(str(path), f"[{name}] {question} = {value!r}: points are a number from 0 "
                                                   f"to {points[question]:g}"))
        for question in sorted(set(entry.get(DIAGNOSES, {})) - set(points)):
            problems.append(Problem(str(path), f"[{name}.{DIAGNOSES}] {question}: a written answer, graded by a "
                                               "person: no check's feedback to diagnose" if question in written
                                    else f"[{name}.{DIAGNOSES}] {question}: no such question"))
    return problems


def example_problems(result: SubmissionResult, entry: dict) -> list[str]:
    """How a graded example differs from its `expected.toml` entry: status, flags, points, diagnoses."""
    problems = []
    if result.status != "ok":
        problems.append(f"status {result.status}: {result.message}")
    if result.flags:
        problems.append("integrity flags on an honest example: " + "; ".join(f["kind"] for f in result.flags))
    for q in result.questions:
        want = None if q.manual else entry.get(q.id)
        if want is not None and abs(q.points - want) > TOLERANCE:
            reasons = [f"{o.check}: {o.message} {o.hint}".rstrip() for o in q.outcomes if not o.passed]
            problems.append(f"{q.id} scores {q.points:g}, expected {want:g}" +
                            "".join(f"\n    {r}" for r in reasons))
    for question, words in entry.get(DIAGNOSES, {}).items():
        q = next((q for q in result.questions if q.id == question), None)
        feedback = " ".join(f"{o.message} {o.hint}" for o in q.outcomes if not o.passed) if q else ""
        if words not in feedback:
            problems.append(f"{question}: the feedback does not say {words!r}; it says: {feedback or '(nothing)'}")
    return problems


def summary_lines(report: ValidationReport) -> list[str]:
    """One line per graded example: its points per question and total."""
    lines = []
    for example, result in report.results.items():
        points = ", ".join(f"{q.id} {'written, for a person to grade' if q.manual else f'{q.points:g}'}"
                           for q in result.questions)
        lines.append(f"  {example}: {result.total:g}/{result.max_automatic:g} ({points})")
    return lines

