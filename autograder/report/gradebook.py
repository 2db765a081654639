"""Writing results: Gradescope results.json, readable feedback, and the gradebook CSV.

Each submission's files are written atomically the moment it is graded and recorded
(`records.py`); the gradebook is written from the records, never from files in `--out`.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config import AssignmentConfig
from ..errors import ConfigError
from ..results import SubmissionResult

RESULTS_DIR = "results"
FEEDBACK_DIR = "feedback"
GRADEBOOK = "gradebook.csv"


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def results_path(out: Path, submission: str) -> Path:
    return out / RESULTS_DIR / f"{submission}.json"


def gradescope_json(result: SubmissionResult) -> dict:
    """Gradescope's results.json shape; torchgrade's own fields sit under `extra_data`."""
    tests = []
    for q in result.questions:
        lines = []
        for o in q.outcomes:
            mark = "PASS" if o.passed else ("PART" if o.score > 0 else "FAIL")
            kind = "public" if o.public else "hidden"
            lines.append(f"[{mark}] {o.check} ({kind}): {o.message}")
            if o.hint and not o.passed:
                lines.append(f"       hint: {o.hint}")
        if not q.outcomes and result.message:
            lines.append(result.message)
        tests.append({
            "name": q.id,
            "score": q.points,
            "max_score": q.max_points,
            "status": "passed" if q.points >= q.max_points else "failed",
            "output": "\n".join(lines),
            "visibility": "visible",
        })
    return {
        "score": result.total,
        "execution_time": round(result.execution_time, 2),
        "output": status_line(result),
        "tests": tests,
        "extra_data": {
            "submission": result.submission,
            "path": result.path,
            "status": result.status,
            "message": result.message,
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


def feedback_text(result: SubmissionResult) -> str:
    lines = [status_line(result), ""]
    if result.flags:
        lines.append("Integrity findings (for the instructor):")
        lines += [f"  - {line}" for line in flag_lines(result)]
        lines.append("")
    if result.cell_errors:
        lines.append("Cells that raised errors while your notebook ran:")
        lines += [f"  - {e}" for e in result.cell_errors]
        lines.append("")
    for test in gradescope_json(result)["tests"]:
        lines.append(f"{test['name']}: {test['score']:g} / {test['max_score']:g}")
        lines += [f"  {line}" for line in test["output"].splitlines()]
        lines.append("")
    return "\n".join(lines)


def feedback_html(result: SubmissionResult) -> str:
    rows = []
    for test in gradescope_json(result)["tests"]:
        colour = "#1a7f37" if test["status"] == "passed" else "#b42318"
        rows.append(
            f"<h3 style='color:{colour}'>{html.escape(test['name'])}: {test['score']:g} / {test['max_score']:g}</h3>"
            f"<pre>{html.escape(test['output'])}</pre>"
        )
    errors = "".join(f"<li><code>{html.escape(e)}</code></li>" for e in result.cell_errors)
    flags = "".join(f"<li>{html.escape(line)}</li>" for line in flag_lines(result))
    return (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(result.submission)}</title>"
        f"<h2>{html.escape(status_line(result))}</h2>"
        + (f"<p>Integrity findings (for the instructor):</p><ul>{flags}</ul>" if flags else "")
        + (f"<p>Cells that raised errors:</p><ul>{errors}</ul>" if errors else "")
        + "".join(rows)
    )


def write_gradescope(out: Path, result: SubmissionResult) -> None:
    atomic_write(results_path(out, result.submission), json.dumps(gradescope_json(result), indent=2))


def write_feedback(out: Path, result: SubmissionResult) -> None:
    atomic_write(out / FEEDBACK_DIR / f"{result.submission}.txt", feedback_text(result))
    atomic_write(out / FEEDBACK_DIR / f"{result.submission}.html", feedback_html(result))


Writer = Callable[[Path, SubmissionResult], None]
WRITERS: dict[str, Writer] = {"feedback": write_feedback, "gradescope": write_gradescope}


def get_writer(name: str) -> Writer:
    try:
        return WRITERS[name]
    except KeyError:
        raise ConfigError(f"unknown result writer {name!r}; known: {', '.join(WRITERS)}") from None


def write_result(out: Path, result: SubmissionResult, writers: tuple[str, ...] = ("feedback", "gradescope")) -> None:
    """Write one submission's files; the results JSON last, since it marks the submission done."""
    for name in writers:
        get_writer(name)(out, result)


def gradebook_frame(results: list[SubmissionResult], config: AssignmentConfig) -> pd.DataFrame:
    columns = ["submission", *config.question_ids, "total", "max_total", "status", "flags"]
    rows = []
    for result in sorted(results, key=lambda r: r.submission):
        points = {q.id: q.points for q in result.questions}
        rows.append({
            "submission": result.submission,
            **{q: points.get(q, 0.0) for q in config.question_ids},
            "total": result.total,
            "max_total": result.max_total,
            "status": result.status,
            "flags": ";".join(result.flag_kinds),
        })
    return pd.DataFrame(rows, columns=columns)


def write_gradebook(out: Path, config: AssignmentConfig, results: list[SubmissionResult]) -> pd.DataFrame:
    frame = gradebook_frame(results, config)
    atomic_write(out / GRADEBOOK, frame.to_csv(index=False))
    return frame
