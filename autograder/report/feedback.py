"""Readable feedback on one submission, for two audiences: text and HTML, figures inline.

`student`: what the student may see (public checks in full, hidden ones by description, `render.py`);
`instructor`: everything, integrity findings and tracebacks included.
"""

from __future__ import annotations

import html
from typing import Any, Iterable

from ..adjustments import adjustment_lines
from ..outcomes import SubmissionResult
from ..render import outcomes_text
from .results_json import status_line


def flag_lines(result: SubmissionResult) -> list[str]:
    """One line per integrity finding, for the instructor."""
    return [f"{f['kind']} ({f['origin']}): {f['detail']}" for f in result.flags]


def feedback_text(result: SubmissionResult, audience: str = "student") -> str:
    lines = [status_line(result), ""]
    if adjustment_lines(result):  # the instructor's adjustments and lateness, with their reasons
        lines += ["Adjustments:", *(f"  - {line}" for line in adjustment_lines(result)), ""]
    if audience == "instructor" and result.flags:
        lines.append("Integrity findings:")
        lines += [f"  - {line}" for line in flag_lines(result)]
        lines.append("")
    if result.cell_errors:
        lines.append("Cells that raised errors while your notebook ran:")
        lines += [f"  - {e}" for e in result.cell_errors]
        lines.append("")
    for q in result.questions:
        lines.append(f"{q.id}: {q.points_text} / {q.max_points:g}")
        lines += outcomes_text(q.outcomes, audience)
        lines += figure_lines(result.figures, q.id, audience)
        lines.append("")
    return "\n".join(lines)


def feedback_html(result: SubmissionResult, audience: str = "student") -> str:
    rows = []
    for q in result.questions:
        colour = "#9a6700" if q.pending else ("#1a7f37" if q.points >= q.max_points else "#b42318")
        rows.append(f"<h3 style='color:{colour}'>{html.escape(q.id)}: {q.points_text} / {q.max_points:g}</h3>"
                    f"<pre style='white-space:pre-wrap'>"
                    f"{html.escape(chr(10).join(outcomes_text(q.outcomes, audience, indent='')))}</pre>"
                    + figure_html(result.figures, q.id, audience))
    errors = "".join(f"<li><code>{html.escape(e)}</code></li>" for e in result.cell_errors)
    flags = "".join(f"<li>{html.escape(line)}</li>" for line in flag_lines(result)) if audience == "instructor" else ""
    return (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(result.submission)}</title>"
        f"<h2>{html.escape(status_line(result))}</h2>"
        + (f"<p>Integrity findings:</p><ul>{flags}</ul>" if flags else "")
        + (f"<p>Adjustments:</p><ul>{''.join(f'<li>{html.escape(a)}</li>' for a in adjustment_lines(result))}</ul>"
           if adjustment_lines(result) else "")
        + (f"<p>Cells that raised errors:</p><ul>{errors}</ul>" if errors else "")
        + "".join(rows)
    )



def shown_figures(figures: Iterable[dict[str, Any]], question: str, audience: str = "student") -> list[dict[str, Any]]:
    """A question's figures for `audience`: drawn ones for a student (instructor-only ones left out); every one
    for an instructor, those that could not be drawn included."""
    mine = [f for f in figures if f.get("question") == question]
    if audience == "instructor":
        return mine
    return [f for f in mine if f.get("png") and f.get("audience", "student") == "student"]


def figure_lines(figures: Iterable[dict[str, Any]], question: str, audience: str = "student") -> list[str]:
    """The text feedback's pointer to a question's figures (PNGs live in the HTML feedback only)."""
    lines = []
    for f in shown_figures(figures, question, audience):
        if f.get("png"):
            lines.append(f"  figure: {f.get('title', '')} (see the html feedback for the figure)")
        else:
            lines.append(f"  figure {f.get('name', '')} was not drawn: {f.get('error', '')}")
    return lines


def figure_html(figures: Iterable[dict[str, Any]], question: str, audience: str = "student") -> str:
    """A question's figures as <figure> elements with the PNG inline (a data URI), so one file holds everything."""
    parts = []
    for f in shown_figures(figures, question, audience):
        title = html.escape(str(f.get("title", "")))
        if f.get("png"):
            png = html.escape(str(f["png"]), quote=True)
            parts.append(f"<figure style='margin:0.5em 0'><img alt='{title}' src='data:image/png;base64,{png}' "
                         f"style='max-width:100%'><figcaption><small>{title}</small></figcaption></figure>")
        else:
            parts.append(f"<p><small>figure {html.escape(str(f.get('name', '')))} was not drawn: "
                         f"{html.escape(str(f.get('error', '')))}</small></p>")
    return "".join(parts)
