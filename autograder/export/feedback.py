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

from ..errors import ConfigError
from ..outcomes import SubmissionResult
from ..report.feedback import feedback_html, feedback_text
from ..report.records import Records
from ..report.roster import MOODLE_ID, claim, read_roster

FORMATS = ("moodle", "canvas", "zip")
CANVAS_PREFIX = re.compile(r"(?P<prefix>[^_]+_(?:LATE_)?\d+_\d+_).+")


@dataclass
class FeedbackExport:
    output: Path
    format: str
    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # submission → why it could not be placed


def moodle_folders(results: list[SubmissionResult], roster_path: Path | None) -> dict[str, str]:
    folders = {r.submission: r.submission for r in results if MOODLE_ID.fullmatch(r.submission)}
    if roster_path is not None:
        roster = claim(read_roster(roster_path), [r.submission for r in results])
        for s in roster.students:
            if s.submission and s.participant_number and s.submission not in folders:
                folders[s.submission] = f"{s.name}_{s.participant_number}_assignsubmission_file_"
    return folders


def canvas_names(results: list[SubmissionResult]) -> dict[str, str]:
    names = {}
    for r in results:
        match = CANVAS_PREFIX.fullmatch(Path(r.path).stem) if r.path else None
        if match:
            names[r.submission] = match.group("prefix") + "feedback.html"
    return names


def export_feedback(out: Path, format_name: str, output: Path | None = None, roster: Path | None = None
                    ) -> FeedbackExport:
    if format_name not in FORMATS:
        raise ConfigError(f"unknown feedback format {format_name!r}; known: {', '.join(FORMATS)}")
    records = Records(Path(out))
    try:
        results = records.results()
    finally:
        records.close()
    output = Path(output) if output else Path(out) / f"feedback-{format_name}.zip"
    report = FeedbackExport(output, format_name)
    if format_name == "moodle":
        folders = moodle_folders(results, roster)
        entries = {n: {f"{folder}/feedback.html": "html"} for n, folder in folders.items()}
        why = "no Moodle participant number: grade Moodle's download, or pass its grading worksheet as --roster"
    elif format_name == "canvas":
        entries = {n: {name: "html"} for n, name in canvas_names(results).items()}
        why = "not graded from a Canvas download (its file name has no name_userid_subid_ prefix)"
    else:
        entries = {r.submission: {f"{r.submission}/feedback.html": "html", f"{r.submission}/feedback.txt": "txt"}
                   for r in results}
        why = ""
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in results:
            if r.submission not in entries:
                report.skipped[r.submission] = why
                continue
            for name, kind in entries[r.submission].items():
                zf.writestr(name, feedback_html(r, "student") if kind == "html" else feedback_text(r, "student"))
            report.written.append(r.submission)
    return report
