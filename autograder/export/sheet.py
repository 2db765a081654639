"""Grading sheets for questions a person grades (`kind = "manual"`): out as CSV and HTML, back in as adjustments.

`torchgrade sheet OUT --question Q` writes `OUT/sheets/<Q>.csv` (a row per submission: `submission`, `question`,
`points` (empty until graded; the points in force if already), `max_points`, `reason`, `answer`) and
`OUT/sheets/<Q>.html`, one static page with the rubric beside each student's answer cell (found by its tag
`answer:<Q>`, `build/notebook.py`). Graders fill in `points` (and a `reason`, shown to the student) and
`torchgrade adjust OUT --from <Q>.csv` records each filled row as an override of that question
(`report/records.py`). Where the records say to anonymise, the sheet names submissions by pseudonym and the
import maps them back.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

from ..build.notebook import read_submission, tagged_cells
from ..errors import ConfigError, InvalidSubmission
from ..report.anonymity import pseudonyms
from ..report.records import Records
from ..report.writers import atomic_write

SHEETS_DIR = "sheets"
COLUMNS = ["submission", "question", "points", "max_points", "reason", "answer"]
DEFAULT_REASON = "graded from the grading sheet"


@dataclass(frozen=True)
class Sheet:
    csv: Path
    html: Path
    rows: int
    graded: int


def answer_of(path: str, question: str) -> str:
    """The student's answer cell(s) for `question`, or why there is none."""
    if not path or not Path(path).is_file():
        return "(the notebook is no longer where it was graded)"
    try:
        cells = tagged_cells(read_submission(Path(path)), f"answer:{question}")
    except InvalidSubmission as exc:
        return f"(not a readable notebook: {exc.message})"
    return "\n\n".join(cells) if cells else "(no answer cell: the cell tagged answer:" + question + " was removed)"


def write_sheet(out: Path, question: str, output: Path | None = None) -> Sheet:
    records = Records(Path(out))
    try:
        results = records.results()
        alias = pseudonyms(records, [r.submission for r in results])
        rubric = records.setting(f"rubric:{question}", "")
    finally:
        records.close()
    rows = []
    for r in results:
        q = next((q for q in r.questions if q.id == question), None)
        if q is None:
            raise ConfigError(f"no question {question!r} here; questions: {', '.join(x.id for x in r.questions)}", out)
        reason = next((a["reason"] for a in reversed(r.adjustments) if a["question"] == question), "")
        rows.append([alias[r.submission], question, "" if q.pending else f"{q.points:g}", f"{q.max_points:g}", reason,
                     answer_of(r.path, question)])
    folder = Path(output) if output else Path(out) / SHEETS_DIR
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([COLUMNS, *rows])
    atomic_write(folder / f"{question}.csv", text.getvalue())
    atomic_write(folder / f"{question}.html", sheet_html(question, rubric, rows))
    return Sheet(folder / f"{question}.csv", folder / f"{question}.html", len(rows), sum(bool(r[2]) for r in rows))


def sheet_html(question: str, rubric: str, rows: list[list[str]]) -> str:
    """One page: the rubric, and each submission's answer beside it."""
    rubric_text = "\n".join(rubric.split("\n")[1:]).strip() if rubric.lstrip().startswith("# RUBRIC") else rubric
    body = "".join(
        f"<tr><td><b>{html.escape(name)}</b><br><span class='muted'>points: {html.escape(points or '—')} / "
        f"{html.escape(most)}</span></td><td><pre>{html.escape(answer)}</pre></td></tr>"
        for name, _, points, most, _, answer in rows)
    return ("<!doctype html><meta charset='utf-8'>"
            f"<title>{html.escape(question)}: grading sheet</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:1.5em;display:flex;gap:1.5em}"
            "aside{position:sticky;top:1em;align-self:flex-start;max-width:30%;background:#f6f8fa;padding:.8em}"
            "pre{white-space:pre-wrap;margin:0}td{border-bottom:1px solid #eaeef2;padding:.4em;vertical-align:top}"
            ".muted{color:#656d76}</style>"
            f"<aside><h2>Rubric: {html.escape(question)}</h2><pre>{html.escape(rubric_text or '(no rubric cell)')}"
            "</pre></aside>"
            f"<main><h1>{html.escape(question)}</h1><p class='muted'>Enter points in the CSV beside this page, then "
            f"<code>torchgrade adjust OUT --from {html.escape(question)}.csv</code>.</p>"
            f"<table>{body}</table></main>")


def import_sheet(out: Path, path: Path) -> list:
    """Each filled row of a grading sheet, recorded as an override (unless the same one is in force already)."""
    try:
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the grading sheet: {exc}", path) from exc
    if not rows or not {"submission", "question", "points"} <= set(rows[0]):
        raise ConfigError("a grading sheet needs the columns submission, question, points (`torchgrade sheet`)", path)
    records = Records(Path(out))
    try:
        results = {r.submission: r for r in records.results()}
        real = {alias: name for name, alias in pseudonyms(records, list(results)).items()}
        wanted = []
        for line, row in enumerate(rows, 2):
            if not (row.get("points") or "").strip():
                continue
            name = real.get(row["submission"].strip(), row["submission"].strip())
            if name not in results:
                raise ConfigError(f"line {line}: no submission {row['submission']!r} in these records", path)
            q = next((q for q in results[name].questions if q.id == row["question"].strip()), None)
            if q is None:
                raise ConfigError(f"line {line}: no question {row['question']!r}", path)
            try:
                points = float(row["points"])
            except ValueError:
                raise ConfigError(f"line {line}: points {row['points']!r} is not a number", path) from None
            if not 0 <= points <= q.max_points:
                raise ConfigError(f"line {line}: {points:g} points is outside 0 to {q.max_points:g} for {q.id}", path)
            wanted.append((name, q, points, (row.get("reason") or "").strip() or DEFAULT_REASON))
        added = []
        for name, q, points, reason in wanted:  # all rows checked before any is recorded
            if q.overridden and q.points == points:
                continue
            added.append(records.add_adjustment(name, q.id, points, reason))
        return added
    finally:
        records.close()
