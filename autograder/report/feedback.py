"""Readable feedback on one submission, for two audiences: text and HTML, figures inline.

`student`: what the student may see (public checks in full, hidden ones by description, `render.py`);
`instructor`: everything, integrity findings and tracebacks included.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable

from ..adjustments import adjustment_lines
from ..outcomes import Outcome, SubmissionResult
from ..render import MARKS, outcome_lines, outcomes_text
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
    """One self-contained page (inline CSS, figures as data URIs): a question per card, its checks coloured by
    outcome, its figures beside it (below it on narrow screens)."""
    flags = flag_lines(result) if audience == "instructor" else []
    return (
        "<!doctype html><html lang='en'><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(result.submission)}</title><style>{STYLE}</style><main>"
        f"<h1>{html.escape(status_line(result))}</h1>"
        + note_html("Integrity findings", flags)
        + note_html("Adjustments", adjustment_lines(result))
        + note_html("Cells that raised errors", result.cell_errors, code=True)
        + "".join(question_html(q, result.figures, audience) for q in result.questions)
        + "</main></html>"
    )


STYLE = """
:root{--pass:#1a7f37;--part:#9a6700;--fail:#cf222e;--error:#8250df;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0}
*{box-sizing:border-box}
body{margin:0;background:#f6f8fa;color:var(--ink);
 font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px}
h1{font-size:1.3rem;margin:0 0 18px}
h2{font-size:1.08rem;margin:0 0 8px;display:flex;justify-content:space-between;gap:12px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.88em}
code{background:#eff2f5;border-radius:4px;padding:.05em .35em;overflow-wrap:anywhere}
pre{white-space:pre-wrap;background:#f6f8fa;border-radius:6px;padding:8px 10px;margin:6px 0 0}
.note{background:#fff;border:1px solid var(--line);border-left:5px solid var(--part);border-radius:8px;
 padding:10px 18px;margin:0 0 16px}
.note h2{margin:0 0 4px}.note ul{margin:0;padding-left:20px}
.question{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,400px);gap:12px 28px;background:#fff;
 border:1px solid var(--line);border-left:6px solid var(--fail);border-radius:8px;padding:16px 20px;margin:0 0 16px}
.question.text-only{grid-template-columns:minmax(0,1fr)}
.question.pass{border-left-color:var(--pass)}.question.pending{border-left-color:var(--part)}
.points{font-variant-numeric:tabular-nums;white-space:nowrap}
.pass .points{color:var(--pass)}.fail .points{color:var(--fail)}.pending .points{color:var(--part)}
.checks{list-style:none;margin:0;padding:0}
.check{display:grid;grid-template-columns:4.2em minmax(0,1fr);gap:2px 10px;align-items:baseline;
 padding:6px 0 6px 10px;margin:4px 0;border-left:3px solid var(--line)}
.badge{font-size:.72rem;font-weight:700;letter-spacing:.04em;text-align:center;color:#fff;border-radius:999px;
 padding:1px 0}
.name{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.82em;
 color:var(--muted);margin-right:4px}
.hint,.check pre{grid-column:2}.hint{color:var(--muted)}.hint b{color:var(--ink)}
.passed{border-left-color:var(--pass)}.passed .badge{background:var(--pass)}
.partial{border-left-color:var(--part)}.partial .badge{background:var(--part)}
.failed{border-left-color:var(--fail)}.failed .badge{background:var(--fail)}.failed .message{color:#82071e}
.error{border-left-color:var(--error)}.error .badge{background:var(--error)}
.figures figure{margin:0 0 12px}.figures img{display:block;max-width:100%;height:auto;border:1px solid var(--line);
 border-radius:6px}
figcaption{font-size:.85rem;color:var(--muted);margin-top:4px}
@media (max-width:820px){.question{grid-template-columns:minmax(0,1fr)}}
"""


def note_html(title: str, lines: list[str], code: bool = False) -> str:
    """A boxed list above the questions (findings, adjustments, cell errors); nothing when `lines` is empty."""
    if not lines:
        return ""
    items = "".join(f"<li><code>{html.escape(line)}</code></li>" if code else f"<li>{with_code(line)}</li>"
                    for line in lines)
    return f"<section class='note'><h2>{html.escape(title)}</h2><ul>{items}</ul></section>"


def question_html(q: Any, figures: Iterable[dict[str, Any]], audience: str) -> str:
    """A question's card: its points, one line per check coloured by outcome, and its figures beside them."""
    state = "pending" if q.pending else ("pass" if q.points >= q.max_points else "fail")
    pictures = figure_html(figures, q.id, audience)
    checks = "".join(check_html(o, lines) for o, lines in check_lines(q.outcomes, audience))
    return (f"<section class='question {state}{'' if pictures else ' text-only'}'><div>"
            f"<h2><span>{html.escape(q.id)}</span><span class='points'>{q.points_text} / {q.max_points:g}</span></h2>"
            f"<ul class='checks'>{checks}</ul></div>"
            + (f"<div class='figures'>{pictures}</div>" if pictures else "") + "</section>")


def check_lines(outcomes: Iterable[Outcome], audience: str) -> Iterable[tuple[Outcome, list[str]]]:
    """Each outcome with its lines as `render` words them for `audience`; a hint several outcomes share is shown
    once, under the first (as in the text feedback)."""
    shown: set[str] = set()
    for o in outcomes:
        yield o, outcome_lines(o, audience, hint=o.hint not in shown)
        if o.status != "passed":
            shown.add(o.hint)


def check_html(o: Outcome, lines: list[str]) -> str:
    """One check: a coloured badge, its line (without the text's [MARK]), its hint, an instructor's traceback."""
    name, _, text = lines[0].split(" ", 1)[1].partition(": ")
    rest = [line.strip() for line in lines[1:]]
    hints = [line.removeprefix("hint: ") for line in rest if line.startswith("hint: ")]
    detail = "\n".join(line for line in rest if not line.startswith("hint: "))
    return (f"<li class='check {o.status}'><span class='badge'>{MARKS[o.status]}</span>"
            f"<span class='message'><span class='name'>{html.escape(name)}</span> {with_code(text)}</span>"
            + "".join(f"<div class='hint'><b>hint:</b> {with_code(h)}</div>" for h in hints)
            + (f"<pre>{html.escape(detail)}</pre>" if detail else "") + "</li>")


def with_code(text: str) -> str:
    """`text` escaped for HTML, its `code` spans (as messages and hints quote code) set in monospace."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


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
            parts.append(f"<figure><img alt='{title}' src='data:image/png;base64,{png}'>"
                         f"<figcaption>{title}</figcaption></figure>")
        else:
            parts.append(f"<p><small>figure {html.escape(str(f.get('name', '')))} was not drawn: "
                         f"{html.escape(str(f.get('error', '')))}</small></p>")
    return "".join(parts)
