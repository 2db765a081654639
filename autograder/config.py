"""Typed configuration: an assignment's `assignment.toml` and the grading settings."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import ConfigError

CONFIG_NAME = "assignment.toml"


QUESTION_KINDS = ("auto", "manual")  # manual: graded by a person (a grading sheet), pending until then


@dataclass(frozen=True)
class Question:
    id: str
    points: float
    kind: str = "auto"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed kernel."""

    cell_timeout: float = 120.0
    notebook_timeout: float = 600.0
    probe_timeout: float = 60.0  # one call of a student function by a check
    total_timeout: float = 0.0  # the whole submission: cells, replays and probes; 0 = twice notebook_timeout
    memory_mb: int = 4096  # everything the submission runs, together
    processes: int = 256  # processes and threads the submission may run at once
    disk_mb: int = 1024  # its working directory, and its /tmp, each
    output_kb: int = 256


@dataclass(frozen=True)
class Threshold:
    """Accuracy-style credit: none below `floor`, linear up to full credit at `full`."""

    floor: float
    full: float

    def credit(self, value: float) -> float:
        if value >= self.full:
            return 1.0
        if value <= self.floor or self.full <= self.floor:
            return 0.0
        return (value - self.floor) / (self.full - self.floor)


@dataclass(frozen=True)
class Late:
    """The late policy (`[late]`): `deadline`, an ISO time with its zone; a penalty per started day or per started
    hour after `grace_minutes`, as a fraction of the assignment's points (0.1: a tenth of them), at most `cap` (a
    fraction too). The arithmetic is `adjustments.lateness`."""

    deadline: str
    penalty_per_day: float = 0.0
    penalty_per_hour: float = 0.0
    cap: float = 1.0
    grace_minutes: float = 0.0

    def check(self) -> str:
        """What is wrong with this policy ("" if nothing)."""
        from datetime import datetime

        try:
            when = datetime.fromisoformat(self.deadline)
        except (TypeError, ValueError):
            return f"[late] deadline {self.deadline!r} is not an ISO time (e.g. 2026-03-01T23:59:00+01:00)"
        if when.tzinfo is None:
            return f"[late] deadline {self.deadline!r} has no time zone (add e.g. +00:00 or Z)"
        if self.penalty_per_day and self.penalty_per_hour:
            return "[late] gives both penalty_per_day and penalty_per_hour: choose one"
        if not all(0 <= v <= 1 for v in (self.penalty_per_day, self.penalty_per_hour, self.cap)):
            return "[late] penalties and cap are fractions of the points, between 0 and 1"
        if self.grace_minutes < 0:
            return "[late] grace_minutes cannot be negative"
        return ""


DATA_SETS = ("mnist",)
VISIBILITIES = ("visible", "after_published", "hidden")  # Gradescope's


@dataclass(frozen=True)
class AssignmentConfig:
    name: str
    title: str
    notebook: str
    questions: tuple[Question, ...]
    reference: str | None = None
    student_files: tuple[str, ...] = ()
    seed: int = 0
    hidden_seed: int = 1
    limits: Limits = field(default_factory=Limits)
    data: tuple[str, ...] = ()  # data sets `assign` writes: "mnist" → data/MNIST (student), hidden/MNIST (grader)
    thresholds: dict[str, dict[str, Threshold]] = field(default_factory=dict)  # name → device → threshold
    hidden_visibility: str = "after_published"  # Gradescope visibility of hidden checks' tests
    late: Late | None = None  # the late policy (`[late]`); None: no deadline

    def threshold(self, name: str, device: str) -> Threshold:
        try:
            by_device = self.thresholds[name]
        except KeyError:
            raise ConfigError(f"no [thresholds.{name}] in the configuration") from None
        return by_device.get(device) or by_device["cpu"]

    @property
    def question_ids(self) -> list[str]:
        return [q.id for q in self.questions]

    @property
    def max_total(self) -> float:
        return float(sum(q.points for q in self.questions))

    def points(self, question_id: str) -> float:
        return next(q.points for q in self.questions if q.id == question_id)

    @classmethod
    def load(cls, path: Path) -> "AssignmentConfig":
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration: {exc}", path) from exc
        refuse_unknown_keys(raw, path)
        try:
            questions = tuple(Question(str(q["id"]), float(q["points"]), str(q.get("kind", "auto")))
                              for q in raw.pop("questions"))
            late = raw.pop("late", None)
            late = Late(**late) if late is not None else None
            limits = Limits(**raw.pop("limits", {}))
            thresholds = {
                name: {device: Threshold(float(t["floor"]), float(t["full"])) for device, t in by_device.items()}
                for name, by_device in raw.pop("thresholds", {}).items()
            }
            config = cls(
                questions=questions,
                limits=limits,
                student_files=tuple(raw.pop("student_files", ())),
                data=tuple(raw.pop("data", ())),
                thresholds=thresholds,
                late=late,
                **raw,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid configuration: {exc}", path) from exc
        ids = config.question_ids
        if len(set(ids)) != len(ids):
            raise ConfigError(f"question ids repeat: {ids}", path)
        if config.hidden_visibility not in VISIBILITIES:
            raise ConfigError(f"hidden_visibility must be one of {', '.join(VISIBILITIES)}, not "
                              f"{config.hidden_visibility!r}", path)
        kinds = {q.kind for q in config.questions} - set(QUESTION_KINDS)
        if kinds:
            raise ConfigError(f"unknown question kind(s) {sorted(kinds)}; known: {', '.join(QUESTION_KINDS)}", path)
        if config.late is not None and config.late.check():
            raise ConfigError(config.late.check(), path)
        unknown = set(config.data) - set(DATA_SETS)
        if unknown:
            raise ConfigError(f"unknown data sets {sorted(unknown)}; known: {', '.join(DATA_SETS)}", path)
        return config

    def to_toml(self) -> str:
        """The same configuration as TOML text (bundles carry their own copy)."""
        lines = [
            f"name = {_q(self.name)}",
            f"title = {_q(self.title)}",
            f"notebook = {_q(self.notebook)}",
            f"seed = {self.seed}",
            f"hidden_seed = {self.hidden_seed}",
            f"student_files = [{', '.join(_q(f) for f in self.student_files)}]",
            f"data = [{', '.join(_q(d) for d in self.data)}]",
            f"hidden_visibility = {_q(self.hidden_visibility)}",
        ]
        if self.reference:
            lines.append(f"reference = {_q(self.reference)}")
        lines.append("\n[limits]")
        for key, value in vars(self.limits).items():
            lines.append(f"{key} = {value}")
        for name, by_device in self.thresholds.items():
            for device, t in by_device.items():
                lines += [f"\n[thresholds.{name}.{device}]", f"floor = {t.floor}", f"full = {t.full}"]
        if self.late is not None:
            lines.append("\n[late]")
            lines += [f"{key} = {_q(value) if isinstance(value, str) else value}"
                      for key, value in vars(self.late).items()]
        for q in self.questions:
            lines += ["\n[[questions]]", f"id = {_q(q.id)}", f"points = {q.points}"]
            if q.kind != "auto":
                lines.append(f"kind = {_q(q.kind)}")
        return "\n".join(lines) + "\n"


def refuse_unknown_keys(raw: dict, path: Path) -> None:
    """A misspelt key would be dropped or fail deep inside a constructor: name it and list the valid keys."""
    tables = [("", raw, AssignmentConfig), ("[limits] ", raw.get("limits", {}), Limits),
              ("[late] ", raw.get("late", {}), Late)]
    tables += [("[[questions]] ", q, Question) for q in raw.get("questions", ())]
    tables += [(f"[thresholds.{name}.{device}] ", t, Threshold) for name, by_device in raw.get("thresholds", {}).items()
               if isinstance(by_device, dict) for device, t in by_device.items()]
    for where, table, kind in tables:
        if not isinstance(table, dict):
            raise ConfigError(f"{where or 'the file'}must be a table of keys, not {type(table).__name__}", path)
        valid = [f.name for f in fields(kind)]
        unknown = sorted(set(table) - set(valid))
        if unknown:
            raise ConfigError(f"{where}unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                              f"valid keys: {', '.join(valid)} (docs/assignment-toml.md)", path)
    missing = [k for k in ("name", "title", "notebook", "questions") if k not in raw]
    if missing:
        raise ConfigError(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)} (each question is a "
                          "[[questions]] table with `id` and `points`; docs/assignment-toml.md)", path)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class GradeSettings:
    """How a batch is graded: chosen on the command line, shared by every submission."""

    device: str = "cpu"
    jobs: int = 1
    force: bool = False
    timeout: float | None = None  # overrides the assignment's notebook_timeout
    threads: int | None = None  # torch/OpenMP threads per kernel; default: usable cores // jobs (kernel/machine.py)
    gpu: int | None = None  # set per submission by the batch on runners with several GPUs
    isolation: str = "bwrap"  # "none" only for trusted notebooks (the instructor's own, a self-check)
    zygote: str | None = None  # set by the batch: the fork server its workers share
    executor: str = "local"  # where submissions are graded: see grading/executors.py (local | dask)
    scheduler: str | None = None  # the Dask scheduler's address (executor "dask"); None: a LocalCluster of `jobs`
    figures: bool = True  # draw the assignment's feedback figures (checks/figures.py) after the checks
