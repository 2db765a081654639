"""Similar submissions: the code students wrote, compared pairwise with copydetect, for the instructor.

Each submission's code is its code cells minus the template's: a cell identical to a cell of the blank
notebook (`blank.ipynb`) is dropped, and what remains is fingerprinted with copydetect (tokens filtered,
so renamed variables and changed comments do not hide a copy; every k-gram kept, no winnowing, so results
do not change from run to run with Python's string hashing), with the blank's own code as boilerplate.
A passage found in many submissions (more than `common`, by default a tenth of the class and at least 10,
as MOSS does) is common knowledge, not evidence, and is dropped too. Only pairs
sharing a fingerprint are compared in full (an inverted index finds them), so the cost is that of
fingerprinting plus the pairs that overlap at all.

A pair's similarity is the larger of the two shares copydetect reports (the part of each submission's
code found in the other); pairs at or above `threshold`, with at least `min_overlap` filtered characters in
common, are listed, most similar first, each with a side-by-side page highlighting what they share.
"""

from __future__ import annotations

import html
import io
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Iterable

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # copydetect imports pyplot: headless, unless pyplot is in use already
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
from copydetect.detector import CodeFingerprint, compare_files  # noqa: E402
from copydetect.utils import get_token_coverage, highlight_overlap  # noqa: E402

from ..errors import InvalidSubmission  # noqa: E402
from ..build.notebook import read_submission  # noqa: E402

NOISE = 25  # copydetect's noise threshold: matches shorter than this many filtered characters are ignored
GUARANTEE = 25  # matches this long are always found; = NOISE: every k-gram a fingerprint (no winnowing), so results
# do not depend on Python's per-process string hashing
THRESHOLD = 0.5
MIN_OVERLAP = 100
CELL_MARK = "# --- cell {} ---"


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    similarity: float  # the larger of the two shares
    shares: tuple[float, float]  # the share of a's code found in b, of b's found in a
    overlap: int  # filtered characters in common
    slices: tuple[np.ndarray, np.ndarray] = field(repr=False, compare=False)  # copied spans, in each code


@dataclass
class Similarity:
    pairs: list[Pair]  # above the threshold, most similar first
    codes: dict[str, str]  # each submission's own code (template cells dropped)
    compared: int  # pairs compared in full
    common: int  # passages found in more submissions than this were ignored
    unread: list[str] = field(default_factory=list)  # submissions whose notebook could not be read


def code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.get("cell_type") == "code" and isinstance(c.get("source"), str)]


def template_cells(blank: Path | None) -> list[str]:
    """The blank notebook's code cells (none without one)."""
    if blank is None or not Path(blank).is_file():
        return []
    return code_cells(read_submission(Path(blank)))


def answer_code(cells: Iterable[str], template: Iterable[str] = ()) -> str:
    """A submission's own code: its code cells that are not template cells, each under a marker line."""
    known = {c.strip() for c in template}
    return "\n".join(f"{CELL_MARK.format(i)}\n{c}" for i, c in enumerate(cells, 1)
                     if c.strip() and c.strip() not in known)


def notebook_code(path: Path, template: Iterable[str] = ()) -> str | None:
    """The code of a submission's notebook, or None where it is not a readable notebook."""
    try:
        return answer_code(code_cells(read_submission(Path(path))), template)
    except InvalidSubmission:
        return None


def fingerprint(name: str, code: str, boilerplate: np.ndarray | None = None) -> CodeFingerprint:
    return CodeFingerprint(f"{name}.py", NOISE, GUARANTEE - NOISE + 1, boilerplate, language="python",
                           fp=io.StringIO(code))


def boilerplate_hashes(template: Iterable[str]) -> np.ndarray:
    """Every k-gram hash of the template's code (window 1, as copydetect does for boilerplate)."""
    code = "\n".join(template)
    if not code.strip():
        return np.array([], dtype=np.int64)
    return np.unique(np.array(list(CodeFingerprint("template.py", NOISE, 1, language="python",
                                                   fp=io.StringIO(code)).hashes), dtype=np.int64))


def drop_hashes(fp: CodeFingerprint, drop: set[int]) -> None:
    """Forget fingerprints in `drop` (passages too common to mean anything), as copydetect does boilerplate."""
    fp.hash_idx = {h: i for h, i in fp.hash_idx.items() if h not in drop}
    fp.hashes = set(fp.hash_idx)
    fp.token_coverage = get_token_coverage(fp.hash_idx, fp.k, len(fp.filtered_code))


def default_common(n: int) -> int:
    return max(10, n // 10)


def find_similar(codes: dict[str, str], template: Iterable[str] = (), threshold: float = THRESHOLD,
                 min_overlap: int = MIN_OVERLAP, common: int | None = None) -> Similarity:
    """Pairs of submissions whose code overlaps by `threshold` or more. `codes`: name → the submission's code
    (`answer_code`); `template`: the blank notebook's code cells, boilerplate; `common`: a passage in more
    submissions than this is ignored (0: never)."""
    codes = {name: code for name, code in codes.items() if code and code.strip()}
    common = default_common(len(codes)) if common is None else common
    boilerplate = boilerplate_hashes(template)
    prints = {name: fingerprint(name, code, boilerplate) for name, code in codes.items()}
    holders: dict[int, list[str]] = defaultdict(list)
    for name, fp in prints.items():
        for h in fp.hashes:
            holders[h].append(name)
    if common:
        frequent = {h for h, names in holders.items() if len(names) > common}
        for fp in prints.values():
            drop_hashes(fp, frequent)
        holders = {h: names for h, names in holders.items() if h not in frequent}
    candidates = {tuple(sorted(pair)) for names in holders.values() for pair in combinations(names, 2)}
    pairs = []
    for a, b in sorted(candidates):
        overlap, (share_a, share_b), slices = compare_files(prints[a], prints[b])
        similarity = max(share_a, share_b)
        if similarity >= threshold and overlap >= min_overlap:
            pairs.append(Pair(a, b, round(float(similarity), 4), (float(share_a), float(share_b)), int(overlap),
                              slices))
    pairs.sort(key=lambda p: (-p.similarity, -p.overlap, p.a, p.b))
    return Similarity(pairs, codes, len(candidates), common)


def submissions_similarity(paths: dict[str, Path], blank: Path | None = None, **options) -> Similarity:
    """`find_similar` over notebooks (name → path); missing or unreadable notebooks are left out (`unread`)."""
    template = template_cells(blank)
    codes = {name: notebook_code(path, template) if Path(path).is_file() else None for name, path in paths.items()}
    similar = find_similar({n: c for n, c in codes.items() if c}, template, **options)
    similar.unread = sorted(n for n, c in codes.items() if c is None)
    return similar


def pair_page_name(pair: Pair) -> str:
    return f"{pair.a}--{pair.b}.html"


def highlighted(code: str, slices: np.ndarray) -> str:
    if slices.size == 0 or slices.shape[0] == 0:
        return html.escape(code)
    text, _ = highlight_overlap(code, slices, "<mark>", "</mark>", escape_html=True)
    return text


def side_by_side_html(pair: Pair, code_a: str, code_b: str, back: str = "../report.html",
                      links: tuple[str, str] | None = None) -> str:
    """One page: the two submissions' code in two columns, what they share highlighted."""
    def column(name: str, share: float, code: str, slices: np.ndarray, link: str | None) -> str:
        title = f"<a href='{html.escape(link)}'>{html.escape(name)}</a>" if link else html.escape(name)
        return (f"<div class='col'><h2>{title}</h2><p>{share:.0%} of this code is found in the other</p>"
                f"<pre>{highlighted(code, slices)}</pre></div>")

    links = links or (None, None)
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{html.escape(pair.a)} and {html.escape(pair.b)}: {pair.similarity:.0%} similar</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em}"
        ".cols{display:flex;gap:1em}.col{flex:1;min-width:0}"
        "pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:12px;line-height:1.35}"
        "mark{background:#ffd8a8}h2{font-size:1.1em;margin:.3em 0}</style>"
        f"<p><a href='{html.escape(back)}'>&larr; report</a></p>"
        f"<h1>{html.escape(pair.a)} and {html.escape(pair.b)}: {pair.similarity:.0%} similar</h1>"
        f"<p>{pair.overlap} characters of normalised code in common (names, strings and comments are ignored); "
        "highlighted: what the two share, template code left out.</p>"
        f"<div class='cols'>{column(pair.a, pair.shares[0], code_a, pair.slices[0], links[0])}"
        f"{column(pair.b, pair.shares[1], code_b, pair.slices[1], links[1])}</div>"
    )

