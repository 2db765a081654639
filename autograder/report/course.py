"""What `grade` records about the course beside results: submission times, extensions, the late policy, anonymity.

Recorded in the grader's records (`records.py`) before a batch, so that every result is written adjusted
(`adjustments.py`) and later commands (`gradebook`, `adjust`, `sheet`, `export feedback`) need nothing else:

- **Submission times**, in order of preference: a `--submitted-at` CSV (`submission,submitted_at`, ISO times with
  a zone; the first column may also be a Canvas user id or Moodle participant number, as `roster.py` matches);
  Gradescope's `submission_metadata.yml` in a submissions folder (its `:created_at:` per `submission_<id>`
  folder); else Canvas's `LATE_` marker in a bulk download's file name (late, by an unknown amount).
- **Extensions**: `--extensions` names a roster (Canvas export, Moodle worksheet or plain CSV, `roster.py`) with an
  `extension` column, in hours.
- **The late policy** (`[late]` of `assignment.toml`), **anonymity** (`--anonymize`, `anonymity.py`) and the rubrics
  of manual questions (from the bundle's solution notebook).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Iterable

import yaml

from ..adjustments import parse_time
from ..config import AssignmentConfig
from ..errors import ConfigError
from .records import Records
from .roster import claim, lms_id, read_roster

GRADESCOPE_METADATA = "submission_metadata.yml"
LATE_MARKER = re.compile(r"[^_]+_LATE_\d+_\d+_.+")  # Canvas: name_LATE_userid_subid_file


def gradescope_times(folders: Iterable[Path]) -> dict[str, str]:
    """`submission_<id>` → its ISO time, from Gradescope's `submission_metadata.yml` in any of `folders`."""
    times = {}
    for folder in folders:
        path = Path(folder) / GRADESCOPE_METADATA
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read Gradescope's metadata: {exc}", path) from exc
        for name, entry in data.items() if isinstance(data, dict) else ():
            if not isinstance(entry, dict):
                continue
            created = entry.get(":created_at", entry.get("created_at"))
            if isinstance(created, datetime):
                times[str(name)] = created.isoformat()
            elif created:
                times[str(name)] = _gradescope_time(str(created), path)
    return times


def _gradescope_time(text: str, path: Path) -> str:
    """Gradescope writes `2026-03-01 23:59:12.345678 -0800`; ISO is accepted too."""
    try:
        return parse_time(text).isoformat()
    except ValueError:
        pass
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S.%f %z").isoformat()
    except ValueError:
        raise ConfigError(f"submission time {text!r} is not a time with a zone", path) from None


def read_submitted_at(path: Path, names: list[str]) -> dict[str, str]:
    """`--submitted-at`: submission (or its LMS id) → ISO time."""
    try:
        rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the submission times: {exc}", path) from exc
    if not rows or len(rows[0]) < 2 or rows[0][1].strip().lower().replace(" ", "_") != "submitted_at":
        raise ConfigError("the submission times need a header `submission,submitted_at`", path)
    by_id = {ident: n for n in names for shape in ("canvas", "moodle") if (ident := lms_id(n, shape))}
    times = {}
    for line, row in enumerate(rows[1:], 2):
        if len(row) < 2 or not row[0].strip():
            continue
        key = row[0].strip()
        name = key if key in names else by_id.get(key, key)
        try:
            times[name] = parse_time(row[1]).isoformat()
        except ValueError as exc:
            raise ConfigError(f"line {line}: {exc} (an ISO time with a zone, e.g. 2026-03-01T23:59:00+01:00)",
                              path) from None
    return times


def record_course(out: Path, config: AssignmentConfig, submissions: list[tuple[str, Path]],
                  folders: Iterable[Path] = (), submitted_at: Path | None = None, extensions: Path | None = None,
                  anonymize: bool = False, rubrics: dict[str, str] | None = None) -> None:
    """Record, before a batch, what its results are adjusted with (see the module's docstring)."""
    names = [name for name, _ in submissions]
    given = read_submitted_at(submitted_at, names) if submitted_at else {}
    metadata = gradescope_times(folders)
    hours = {}
    if extensions:
        roster = claim(read_roster(extensions), names)
        hours = {s.submission: s.extension_hours for s in roster.students if s.submission and s.extension}
    records = Records(Path(out))
    try:
        records.set_setting("late", asdict(config.late) if config.late else None)
        if anonymize:
            records.set_setting("anonymize", True)
        for qid, text in (rubrics or {}).items():
            records.set_setting(f"rubric:{qid}", text)
        for name, path in submissions:
            when = given.get(name) or metadata.get(name) or ""
            marker = bool(LATE_MARKER.fullmatch(Path(path).stem))
            records.set_timing(name, submitted_at=when or None, late_marker=marker,  # a known time is kept
                               extension_hours=hours.get(name) if name in hours else None)
    finally:
        records.close()


def unused_times(config: AssignmentConfig, submitted_at: Path | None, extensions: Path | None, built: bool) -> str:
    """What to say when submission times or extensions are given for an assignment without a late policy: they are
    recorded (a regrade with a policy uses them) but change no grade now. Empty where there is nothing to say."""
    given = [flag for flag, path in (("--submitted-at", submitted_at), ("--extensions", extensions)) if path]
    if not given or config.late is not None:
        return ""
    where = ("add a [late] table to the assignment's assignment.toml and build it again (torchgrade assign)" if built
             else "add a [late] table to its assignment.toml")
    return (f"{' and '.join(given)} given, but this assignment has no late policy: no penalty applies. The times are "
            f"kept: {where}, and grading it then applies them.")


CONFIG_KEY = "config"
BLANK_COPY = ".torchgrade-blank.ipynb"  # the template, kept for reports written after the batch


def record_config(out: Path, config: AssignmentConfig, blank: Path | None = None) -> None:
    """What later commands (`adjust`) need of the assignment to write its outputs again: its questions."""
    records = Records(Path(out))
    try:
        records.set_setting(CONFIG_KEY, {"name": config.name, "title": config.title, "notebook": config.notebook,
                                         "hidden_visibility": config.hidden_visibility,
                                         "questions": [[q.id, q.points, q.kind] for q in config.questions]})
    finally:
        records.close()
    if blank is not None and Path(blank).is_file():
        (Path(out) / BLANK_COPY).write_bytes(Path(blank).read_bytes())


def recorded_config(records: Records) -> AssignmentConfig:
    from ..config import Question

    data = records.setting(CONFIG_KEY)
    if not data:  # graded without the command line (`grade_into`): the questions as the results list them
        results = records.results(adjusted=False)
        if not results:
            raise ConfigError("nothing graded here yet", records.path)
        name = records.path.parent.resolve().name
        data = {"name": name, "title": name, "notebook": f"{name}.ipynb", "questions": [
            [q.id, q.max_points, "manual" if q.manual else "auto"] for q in results[0].questions]}
    questions = tuple(Question(qid, float(points), kind) for qid, points, kind in data.pop("questions"))
    return AssignmentConfig(questions=questions, **data)


def refresh(out: Path) -> list[str]:
    """Write every output of `out` again from its records (after an adjustment): gradebook, results JSON,
    feedback, instructor pages and the report. Returns the submissions written."""
    from .gradebook import write_gradebook
    from .instructor import write_report
    from .writers import write_result

    records = Records(Path(out))
    try:
        config = recorded_config(records)
        results = records.results()
    finally:
        records.close()
    for result in results:
        write_result(Path(out), result, config)
    write_gradebook(Path(out), config, results)
    blank = Path(out) / BLANK_COPY
    write_report(Path(out), blank if blank.is_file() else None, config.name)
    return [r.submission for r in results]
