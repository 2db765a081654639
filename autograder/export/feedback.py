"""Students' feedback, packed the way each LMS bulk-imports it: `torchgrade export feedback OUT --format ...`.

The feedback is each recorded result's student feedback (`report/feedback.py`), adjusted (`Records.results`),
under the real names and ids the LMS knows (never pseudonyms):

- `moodle`: a zip for Moodle's "Upload multiple feedback files in a zip" (the assignment's "View all submissions",
  Grading action): a folder per student named as Moodle's own download names it,
  `Full Name_<participant>_assignsubmission_file_/feedback.html`. A submission graded from Moodle's download already
  has that name; otherwise a Moodle grading worksheet (`--roster`) gives the name and participant number.
- `canvas`: a zip for Canvas's "Re-upload submissions" (the assignment's column in the Gradebook), which attaches
  each file as a submission comment to the student whose download it was: each file keeps the download's name
  prefix `name_[LATE_]userid_subid_` and ends in `feedback.html`.
- `zip`: a folder per submission, `<submission>/feedback.html` and `feedback.txt`, to hand out by other means.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import TorchgradeError
from ..extensions import load
from ..outcomes import SubmissionResult
from ..report.feedback import feedback_html, feedback_text
from ..report.records import Records
from ..report.roster import MOODLE_ID, claim, read_roster

CANVAS_PREFIX = re.compile(r"(?P<prefix>[^_]+_(?:LATE_)?\d+_\d+_).+")


@dataclass
class FeedbackExport:
    output: Path
    format: str
    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # submission → why it could not be placed


Entries = dict[str, dict[str, str]]  # submission → file name in the zip → "html" or "txt"


@dataclass(frozen=True)
class FeedbackFormat:
    """How one LMS takes feedback in bulk: the zip's entries per submission (given the results and a roster), and
    why a submission without entries is left out. Registered in `extensions.py` (`feedback`)."""

    name: str
    entries: Callable[[list[SubmissionResult], Path | None], Entries]
    left_out: str = ""


def moodle_entries(results: list[SubmissionResult], roster_path: Path | None) -> Entries:
    folders = {r.submission: r.submission for r in results if MOODLE_ID.fullmatch(r.submission)}
    if roster_path is not None:
        roster = claim(read_roster(roster_path), [r.submission for r in results])
        for s in roster.students:
            if s.submission and s.participant_number and s.submission not in folders:
                folders[s.submission] = f"{s.name}_{s.participant_number}_assignsubmission_file_"
    return {name: {f"{folder}/feedback.html": "html"} for name, folder in folders.items()}


def canvas_entries(results: list[SubmissionResult], roster_path: Path | None) -> Entries:
    entries = {}
    for r in results:
        match = CANVAS_PREFIX.fullmatch(Path(r.path).stem) if r.path else None
        if match:
            entries[r.submission] = {match.group("prefix") + "feedback.html": "html"}
    return entries


def zip_entries(results: list[SubmissionResult], roster_path: Path | None) -> Entries:
    return {r.submission: {f"{r.submission}/feedback.html": "html", f"{r.submission}/feedback.txt": "txt"}
            for r in results}


MOODLE = FeedbackFormat("moodle", moodle_entries, "no Moodle participant number: grade Moodle's download, or pass "
                                                  "a roster with its Identifier as --roster")
CANVAS = FeedbackFormat("canvas", canvas_entries, "not graded from a Canvas download (its file name has no "
                                                  "name_userid_subid_ prefix)")
ZIP = FeedbackFormat("zip", zip_entries)


def export_feedback(out: Path, format_name: str, output: Path | None = None, roster: Path | None = None
                    ) -> FeedbackExport:
    fmt: FeedbackFormat = load("feedback", format_name)
    records = Records(Path(out))
    try:
        results = records.results()
    finally:
        records.close()
    output = Path(output) if output else Path(out) / f"feedback-{fmt.name}.zip"
    report = FeedbackExport(output, fmt.name)
    entries = fmt.entries(results, roster)
    report.skipped = {r.submission: fmt.left_out for r in results if r.submission not in entries}
    placed = [r for r in results if r.submission in entries]
    if not placed:  # an empty zip would upload as if it were feedback; an earlier one, as if it were this one
        stale = output.is_file()
        output.unlink(missing_ok=True)
        why = (f"none of the {len(results)} graded submission(s) could be placed ({fmt.left_out})" if results
               else "nothing is graded here yet")
        raise TorchgradeError(f"no {fmt.name} feedback written: {why}"
                              + (f"; the {output.name} of an earlier export was removed" if stale else ""), out)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in placed:
            for name, kind in entries[r.submission].items():
                zf.writestr(name, feedback_html(r, "student") if kind == "html" else feedback_text(r, "student"))
            report.written.append(r.submission)
    return report
