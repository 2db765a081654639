"""Writing results: Gradescope results.json, readable feedback, and the gradebook CSV.

Each submission's files are written atomically the moment it is graded and recorded
(`records.py`). The gradebook is written from the records, never from files in `--out`: in full
when a batch starts and when it ends (sorted, atomically), and in between one appended row per
result (`Gradebook`), so that its cost stays linear in the batch and it is never behind by more
than the result being written.
"""

from __future__ import annotations

import csv
import html
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from ..checks.figures import figure_html, figure_lines
from ..checks.render import outcome_lines, outcomes_text
from ..config import AssignmentConfig
from ..errors import ConfigError
from ..results import SubmissionResult

RESULTS_DIR = "results"
FEEDBACK_DIR = "feedback"
INSTRUCTOR_DIR = "instructor"
GRADEBOOK = "gradebook.csv"


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def results_path(out: Path, submission: str) -> Path:
    return out / RESULTS_DIR / f"{submission}.json"


def gradescope_json(result: SubmissionResult, config: AssignmentConfig) -> dict:
    """Gradescope's results.json shape, one test per check, in the student's view: public tests visible,
    hidden ones as `hidden_visibility` says. torchgrade's own fields sit under `extra_data`."""
    tests = []
    for q in result.questions:
        weights = sum(o.weight for o in q.outcomes) or 1.0
        for o in q.outcomes:
            share = q.max_points * o.weight / weights
            tests.append({
                "name": f"{q.id} / {o.check}",
                "score": round(share * o.score, 4),
                "max_score": round(share, 4),
                "status": "passed" if o.status == "passed" else "failed",
                "output": "\n".join(outcome_lines(o, "student")),
                "visibility": "visible" if o.public else config.hidden_visibility,
            })
        if not q.outcomes:
            tests.append({"name": q.id, "score": 0.0, "max_score": q.max_points, "status": "failed",
                          "output": result.message or "not graded", "visibility": "visible"})
    return {
        "score": result.total,
        "execution_time": round(result.execution_time, 2),
        "output": status_line(result),
        "tests": tests,
        "extra_data": {
            "submission": result.submission,
            "status": result.status,
            "message": result.message,
            "questions": {q.id: q.points for q in result.questions},
            "max_total": result.max_total,
            "cell_time": round(result.cell_time, 2),
            "cell_errors": result.cell_errors,
            "device": result.device,
            "flags": result.flags,
            "memory_peak_mb": result.memory_peak_mb,
            "restarts": result.restarts,
        },
    }


def status_line(result: SubmissionResult) -> str:
    text = f"{result.submission}: {result.total:g} / {result.max_total:g} points, status {result.status}"
    return f"{text} ({result.message})" if result.message else text


def flag_lines(result: SubmissionResult) -> list[str]:
    """One line per integrity finding, for the instructor."""
    return [f"{f['kind']} ({f['origin']}): {f['detail']}" for f in result.flags]


def feedback_text(result: SubmissionResult, audience: str = "student") -> str:
    lines = [status_line(result), ""]
    if audience == "instructor" and result.flags:
        lines.append("Integrity findings:")
        lines += [f"  - {line}" for line in flag_lines(result)]
        lines.append("")
    if result.cell_errors:
        lines.append("Cells that raised errors while your notebook ran:")
        lines += [f"  - {e}" for e in result.cell_errors]
        lines.append("")
    for q in result.questions:
        lines.append(f"{q.id}: {q.points:g} / {q.max_points:g}")
        lines += outcomes_text(q.outcomes, audience)
        lines += figure_lines(result.figures, q.id, audience)
        lines.append("")
    return "\n".join(lines)


def feedback_html(result: SubmissionResult, audience: str = "student") -> str:
    rows = []
    for q in result.questions:
        colour = "#1a7f37" if q.points >= q.max_points else "#b42318"
        rows.append(f"<h3 style='color:{colour}'>{html.escape(q.id)}: {q.points:g} / {q.max_points:g}</h3>"
                    f"<pre style='white-space:pre-wrap'>"
                    f"{html.escape(chr(10).join(outcomes_text(q.outcomes, audience, indent='')))}</pre>"
                    + figure_html(result.figures, q.id, audience))
    errors = "".join(f"<li><code>{html.escape(e)}</code></li>" for e in result.cell_errors)
    flags = "".join(f"<li>{html.escape(line)}</li>" for line in flag_lines(result)) if audience == "instructor" else ""
    return (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(result.submission)}</title>"
        f"<h2>{html.escape(status_line(result))}</h2>"
        + (f"<p>Integrity findings:</p><ul>{flags}</ul>" if flags else "")
        + (f"<p>Cells that raised errors:</p><ul>{errors}</ul>" if errors else "")
        + "".join(rows)
    )


def write_gradescope(out: Path, result: SubmissionResult, config: AssignmentConfig) -> None:
    atomic_write(results_path(out, result.submission), json.dumps(gradescope_json(result, config), indent=2))


def write_feedback(out: Path, result: SubmissionResult, config: AssignmentConfig) -> None:
    """The student's files (`feedback/`, fit to hand out) and the instructor's (`instructor/`: everything)."""
    for folder, audience in ((FEEDBACK_DIR, "student"), (INSTRUCTOR_DIR, "instructor")):
        atomic_write(out / folder / f"{result.submission}.txt", feedback_text(result, audience))
        atomic_write(out / folder / f"{result.submission}.html", feedback_html(result, audience))


Writer = Callable[[Path, SubmissionResult, AssignmentConfig], None]
WRITERS: dict[str, Writer] = {"feedback": write_feedback, "gradescope": write_gradescope}


def get_writer(name: str) -> Writer:
    try:
        return WRITERS[name]
    except KeyError:
        raise ConfigError(f"unknown result writer {name!r}; known: {', '.join(WRITERS)}") from None


def write_result(out: Path, result: SubmissionResult, config: AssignmentConfig,
                 writers: tuple[str, ...] = ("feedback", "gradescope")) -> None:
    """Write one submission's files (it is recorded already)."""
    for name in writers:
        get_writer(name)(out, result, config)


def gradebook_columns(config: AssignmentConfig) -> list[str]:
    return ["submission", *config.question_ids, "total", "max_total", "status", "flags"]


def gradebook_row(result: SubmissionResult, config: AssignmentConfig) -> dict[str, Any]:
    points = {q.id: q.points for q in result.questions}
    return {
        "submission": result.submission,
        **{q: points.get(q, 0.0) for q in config.question_ids},
        "total": result.total,
        "max_total": result.max_total,
        "status": result.status,
        "flags": ";".join(result.flag_kinds),
    }


def gradebook_frame(results: Iterable[SubmissionResult], config: AssignmentConfig) -> pd.DataFrame:
    rows = [gradebook_row(r, config) for r in sorted(results, key=lambda r: r.submission)]
    return pd.DataFrame(rows, columns=gradebook_columns(config))


def write_gradebook(out: Path, config: AssignmentConfig, results: Iterable[SubmissionResult]) -> pd.DataFrame:
    frame = gradebook_frame(results, config)
    atomic_write(out / GRADEBOOK, frame.to_csv(index=False))
    return frame


class Gradebook:
    """`gradebook.csv` while a batch runs: written in full from the records at the start, one row appended per
    result (O(1) each), and rewritten sorted, in full, from the records by `close`. A kill at any moment leaves
    every row appended so far; the next run rewrites it from the records."""

    def __init__(self, out: Path, config: AssignmentConfig, results: Iterable[SubmissionResult]):
        self.out, self.config = out, config
        write_gradebook(out, config, results)
        self.file = open(out / GRADEBOOK, "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, gradebook_columns(config), lineterminator="\n")  # as pandas

    def add(self, result: SubmissionResult) -> None:
        self.writer.writerow(gradebook_row(result, self.config))
        self.file.flush()

    def close(self, results: Iterable[SubmissionResult]) -> pd.DataFrame:
        """The final gradebook, from every result recorded: sorted, one row per submission."""
        self.file.close()
        return write_gradebook(self.out, self.config, results)
