"""The instructor's report on a whole `--out`: `report.html`, written from the records at the end of each `grade`.

One page that stands alone (pictures are embedded as PNG data URIs): the score distribution of each question
and of the total (histograms, matplotlib's Agg backend, no display needed), status counts, the most frequent
diagnoses per question (failing outcomes grouped by check and by their hint, or their message with the
numbers taken out, so that the same mistake groups), the slowest submissions, integrity flags, and pairs of
submissions whose code is similar (`similarity.py`), each with a side-by-side page under `similarity/`.
It is for the instructor only: it quotes hidden checks' messages. It comes from the records
(`records.Records`), so a resumed batch's report covers everything graded into `--out`, with the instructor's
adjustments applied. Where the records say to anonymise (`grade --anonymize`, `anonymity.py`), every name in the
report, the similarity pages and the instructor pages is a pseudonym (the instructor pages are rewritten under
their pseudonyms, those under real names removed).
"""

from __future__ import annotations

import base64
import html
import io
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

from ..outcomes import STATUSES, SubmissionResult
from .writers import INSTRUCTOR_DIR, atomic_write
from .records import Records

REPORT = "report.html"
SIMILARITY_DIR = "similarity"
SLOWEST = 10
DIAGNOSES_PER_QUESTION = 8
MAX_PAIRS = 50
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
STATUS_MEANING = {
    "ok": "ran to its end", "timeout": "a time limit stopped it", "memory": "the memory limit stopped it",
    "crashed": "the kernel died", "invalid": "not a readable notebook", "error": "the grader failed on it",
}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1150px;color:#1f2328;
padding:0 1em}h1{margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
nav a{margin-right:1em}table{border-collapse:collapse;margin:.5em 0 1em}th,td{border-bottom:1px solid #eaeef2;
padding:.25em .7em;text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right;
font-variant-numeric:tabular-nums}.muted{color:#656d76}.bar{background:#0969da;height:.8em;display:inline-block}
.hists{display:flex;flex-wrap:wrap;gap:.5em}.hists img{border:1px solid #eaeef2}code{font-size:.9em}
.tag{font-size:.8em;border-radius:3px;padding:0 .3em;background:#eaeef2}.error{background:#ffebe9}
"""


@dataclass
class Diagnosis:
    question: str
    checks: list[str]
    public: bool  # every check of the group is public
    text: str  # the hint, or the message with its numbers taken out
    example: str  # one message as it was
    statuses: Counter = field(default_factory=Counter)
    submissions: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.submissions)


def normalise(text: str) -> str:
    """The text with its numbers replaced by `#` and its spaces collapsed: the same mistake, whatever values."""
    return " ".join(NUMBER.sub("#", text).split())


def diagnoses(results: Iterable[SubmissionResult]) -> dict[str, list[Diagnosis]]:
    """Per question, failing outcomes (partial, failed, or error) grouped by what they say, most frequent first:
    by hint (a hint names the mistake, whichever checks caught it), else by check and message with its numbers
    taken out. A group counts submissions, each once."""
    groups: dict[tuple, Diagnosis] = {}
    for result in results:
        for q in result.questions:
            for o in q.outcomes:
                if o.status == "passed":
                    continue
                by_hint = bool(o.hint) and o.status != "error"
                text = o.hint if by_hint else normalise(o.message)
                key = (q.id, normalise(text)) if by_hint else (q.id, o.check, o.status == "error", text)
                group = groups.setdefault(key, Diagnosis(q.id, [], True, text, o.message))
                if o.check not in group.checks:
                    group.checks.append(o.check)
                group.public &= o.public
                group.statuses[o.status] += 1
                if result.submission not in group.submissions:
                    group.submissions.append(result.submission)
    by_question: dict[str, list[Diagnosis]] = {}
    for group in groups.values():
        by_question.setdefault(group.question, []).append(group)
    for groups_of_q in by_question.values():
        groups_of_q.sort(key=lambda d: (-d.count, d.checks, d.text))
    return by_question


def questions_of(results: list[SubmissionResult]) -> list[tuple[str, float]]:
    """Question ids and their points, in the assignment's order (as results list them)."""
    seen: dict[str, float] = {}
    for result in results:
        for q in result.questions:
            seen.setdefault(q.id, q.max_points)
    return list(seen.items())


def histogram_png(scores: list[float], max_points: float, title: str) -> str:
    """A histogram of points as a PNG data URI (matplotlib's Agg canvas; no pyplot, no display)."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    step = 0.5 if max_points <= 10 else 1.0 if max_points <= 40 else max_points / 40
    edges = np.arange(-step / 2, max_points + step, step)
    fig = Figure(figsize=(3.6, 2.3), dpi=100)
    ax = fig.add_subplot()
    ax.hist(np.clip(scores, 0, max_points), bins=edges, color="#0969da", edgecolor="white")
    if scores:  # the mean: a dashed line, its value in the title
        mean = float(np.mean(scores))
        ax.axvline(mean, color="#cf222e", linestyle="--", linewidth=1)
        title = f"{title}, mean {mean:.3g}"
    ax.set_xlim(-step, max_points + step)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("points", fontsize=8)
    ax.set_ylabel("submissions", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def esc(value) -> str:
    return html.escape(str(value))


def submission_link(name: str, prefix: str = "") -> str:
    return f"<a href='{esc(prefix + INSTRUCTOR_DIR + '/' + quote(name) + '.html')}'>{esc(name)}</a>"


def table(head: list[str], rows: list[list[str]], numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    cells = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def section_distribution(results: list[SubmissionResult]) -> str:
    """A histogram of the totals and of each question's points. A question still pending (a written answer not graded
    yet, checks that could not run) has no points yet: left out of its question's histogram, and said in the totals'."""
    questions = questions_of(results)
    unfinished = sum(any(q.pending for q in r.questions) for r in results)
    images = [histogram_png([r.total for r in results], max((r.max_total for r in results), default=0.0),
                            f"total (out of {max((r.max_total for r in results), default=0):g}"
                            + (f"; {unfinished} with points pending)" if unfinished else ")"))]
    for qid, points in questions:
        scored = [next((q for q in r.questions if q.id == qid), None) for r in results]
        pending = sum(q is not None and q.pending for q in scored)
        scores = [q.points if q is not None else 0.0 for q in scored if q is None or not q.pending]
        images.append(histogram_png(scores, points, f"{qid} (out of {points:g}"
                                                    + (f"; {pending} pending)" if pending else ")")))
    pictures = "".join(f"<img alt='score histogram' src='{src}'>" for src in images)
    return f"<h2 id='distribution'>Score distribution</h2><div class='hists'>{pictures}</div>"


def section_statuses(results: list[SubmissionResult]) -> str:
    counts = Counter(r.status for r in results)
    statuses = list(STATUSES) + sorted(set(counts) - set(STATUSES))
    most = max(counts.values(), default=1)
    rows = [[f"<code>{esc(s)}</code>", str(counts[s]),
             f"<span class='bar' style='width:{120 * counts[s] / most:.0f}px'></span>", esc(STATUS_MEANING.get(s, ""))]
            for s in statuses]
    return f"<h2 id='statuses'>Status counts</h2>{table(['status', 'submissions', '', 'meaning'], rows, [1])}"


def section_diagnoses(results: list[SubmissionResult]) -> str:
    by_question = diagnoses(results)
    parts = ["<h2 id='diagnoses'>Most frequent diagnoses</h2><p class='muted'>Failing outcomes grouped by hint "
             "(whichever checks gave it), else by check and message with the numbers left out; count: submissions. "
             "Hidden checks' messages included.</p>"]
    if not by_question:
        parts.append("<p>No check failed.</p>")
    for qid, _ in questions_of(results):
        groups = by_question.get(qid, [])
        if not groups:
            continue
        rows = []
        for d in groups[:DIAGNOSES_PER_QUESTION]:
            names = ", ".join(submission_link(n) for n in d.submissions[:6])
            more = f" and {len(d.submissions) - 6} more" if len(d.submissions) > 6 else ""
            kinds = "outcomes: " + ", ".join(f"{s} {n}" for s, n in sorted(d.statuses.items()))
            tag = "" if d.public else " <span class='tag'>hidden</span>"
            checks = ", ".join(f"<code>{esc(c)}</code>" for c in d.checks)
            example = "" if d.example == d.text else f"<br><span class='muted'>e.g. {esc(d.example)}</span>"
            rows.append([str(d.count), f"{checks}{tag}<br><span class='muted'>{esc(kinds)}</span>",
                         f"{esc(d.text)}{example}", names + more])
        rest = len(groups) - DIAGNOSES_PER_QUESTION
        parts.append(f"<h3>{esc(qid)}</h3>" + table(["count", "check", "diagnosis", "submissions"], rows, [0])
                     + (f"<p class='muted'>and {rest} rarer diagnoses</p>" if rest > 0 else ""))
    return "".join(parts)


def section_slowest(results: list[SubmissionResult]) -> str:
    slowest = sorted(results, key=lambda r: -r.execution_time)[:SLOWEST]
    rows = [[submission_link(r.submission), f"{r.execution_time:.1f}", f"{r.cell_time:.1f}",
             f"{r.memory_peak_mb:.0f}", str(r.restarts), f"<code>{esc(r.status)}</code>"] for r in slowest]
    head = ["submission", "grading (s)", "its cells (s)", "peak memory (MB)", "restarts", "status"]
    return f"<h2 id='slowest'>Slowest submissions</h2>{table(head, rows, [1, 2, 3, 4])}"


def section_flagged(results: list[SubmissionResult]) -> str:
    flagged = [r for r in results if r.flags]
    if not flagged:
        return "<h2 id='flagged'>Flagged submissions (0)</h2><p>No integrity finding.</p>"
    rows = [[submission_link(r.submission), f"<code>{esc(f.get('kind', ''))}</code>", esc(f.get("origin", "")),
             esc(f.get("detail", ""))] for r in flagged for f in r.flags]
    return (f"<h2 id='flagged'>Flagged submissions ({len(flagged)})</h2>"
            + table(["submission", "finding", "origin", "detail"], rows))


def section_similarity(similar, shown: list, pages: dict, skipped: int, threshold: float) -> str:
    head = f"<h2 id='similar'>Similar pairs ({len(similar.pairs) if similar else 0})</h2>"
    if similar is None:
        return head + "<p>Not computed.</p>"
    note = (f"<p class='muted'>The code of answer cells compared with copydetect (names, strings and comments "
            f"ignored; the template's cells left out; passages in more than {similar.common} submissions ignored): "
            f"{len(similar.codes)} submissions with code of their own, {similar.compared} pairs compared, pairs at "
            f"{threshold:.0%} or more listed.")
    note += f" {skipped} notebook(s) could not be read (moved, or not notebooks).</p>" if skipped else "</p>"
    if not shown:
        return head + note + "<p>No pair above the threshold.</p>"
    rows = [[submission_link(p.a), submission_link(p.b), f"{p.similarity:.0%}",
             f"{p.shares[0]:.0%} / {p.shares[1]:.0%}", str(p.overlap),
             f"<a href='{esc(pages[p])}'>side by side</a>"] for p in shown]
    more = (f"<p class='muted'>{len(similar.pairs) - len(shown)} less similar pairs not listed.</p>"
            if len(similar.pairs) > len(shown) else "")
    return head + note + table(["submission", "submission", "similarity", "shares", "characters in common", ""],
                               rows, [2, 3, 4]) + more


def write_similarity_pages(out: Path, similar, shown: list) -> dict:
    """A side-by-side page per pair shown, under `similarity/` (old pages removed); pair → link from the report."""
    from .similarity import pair_page_name, side_by_side_html

    folder = out / SIMILARITY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.html"):
        old.unlink()
    pages = {}
    for pair in shown:
        name = pair_page_name(pair)
        links = tuple(f"../{INSTRUCTOR_DIR}/{quote(n)}.html" for n in (pair.a, pair.b))
        atomic_write(folder / name, side_by_side_html(pair, similar.codes[pair.a], similar.codes[pair.b],
                                                      f"../{REPORT}", links))
        pages[pair] = f"{SIMILARITY_DIR}/{quote(name)}"
    return pages


def report_html(results: list[SubmissionResult], title: str = "", similar=None, pages: dict | None = None,
                shown: list | None = None, skipped: int = 0, threshold: float = 0.5) -> str:
    totals = [r.total for r in results]
    mean = f"{sum(totals) / len(totals):.2f}" if totals else "-"
    heading = f"{esc(title)}: instructor report" if title else "Instructor report"
    summary = (f"<p>{len(results)} submission(s) graded; mean total {mean} / "
               f"{max((r.max_total for r in results), default=0):g}; {sum(bool(r.flags) for r in results)} flagged. "
               f"<span class='muted'>Written {time.strftime('%Y-%m-%d %H:%M')} from the grader's records; for the "
               "instructor only (it quotes hidden checks).</span></p>")
    nav = "<nav>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in (
        ("distribution", "distribution"), ("statuses", "statuses"), ("diagnoses", "diagnoses"),
        ("slowest", "slowest"), ("flagged", "flagged"), ("similar", "similar pairs"))) + "</nav>"
    if not results:
        body = "<p>No submission graded yet.</p>"
    else:
        body = (section_distribution(results) + section_statuses(results) + section_diagnoses(results)
                + section_slowest(results) + section_flagged(results)
                + section_similarity(similar, shown or [], pages or {}, skipped, threshold))
    return (f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{heading}</title><style>{STYLE}</style>"
            f"<body><h1>{heading}</h1>{summary}{nav}{body}</body></html>")


def write_instructor_pages(out: Path, results: list[SubmissionResult], real: dict[str, str]) -> None:
    """The instructor pages under pseudonyms (`real`: pseudonym → name), those under real names removed."""
    from .feedback import feedback_html, feedback_text

    for r in results:
        atomic_write(out / INSTRUCTOR_DIR / f"{r.submission}.txt", feedback_text(r, "instructor"))
        atomic_write(out / INSTRUCTOR_DIR / f"{r.submission}.html", feedback_html(r, "instructor"))
        for suffix in (".txt", ".html"):
            (out / INSTRUCTOR_DIR / f"{real[r.submission]}{suffix}").unlink(missing_ok=True)


def write_report(out: Path, blank: Path | None = None, title: str = "", threshold: float | None = None,
                 max_pairs: int = MAX_PAIRS, anonymize: bool = False) -> Path:
    """`<out>/report.html` (and `<out>/similarity/`) from everything recorded in `out`. `blank`: the assignment's
    blank notebook, whose code is left out of the similarity comparison; `anonymize`: record the wish to
    anonymise (kept for every later report)."""
    from .anonymity import anonymised, pseudonyms
    from .similarity import THRESHOLD, submissions_similarity

    threshold = THRESHOLD if threshold is None else threshold
    records = Records(out)
    try:
        if anonymize:
            records.set_setting("anonymize", True)
        results = records.results()
        alias = pseudonyms(records, [r.submission for r in results])
    finally:
        records.close()
    paths = {alias[r.submission]: Path(r.path) for r in results if r.path}
    real = {alias[r.submission]: r.submission for r in results}
    results = [anonymised(r, alias[r.submission]) for r in results]
    if any(a != n for a, n in real.items()):
        write_instructor_pages(out, results, real)
    similar = submissions_similarity(paths, blank, threshold=threshold) if results else None
    skipped = len(similar.unread) + len(results) - len(paths) if similar else 0
    shown = similar.pairs[:max_pairs] if similar else []
    pages = write_similarity_pages(out, similar, shown) if similar else {}
    path = out / REPORT
    atomic_write(path, report_html(results, title, similar, pages, shown, skipped, threshold))
    return path
