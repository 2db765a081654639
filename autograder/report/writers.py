"""Each submission's files in `--out`, written atomically the moment it is graded and recorded.

`feedback/<submission>.{txt,html}` for the student, `instructor/<submission>.{txt,html}` with everything, and
`results/<submission>.json` in Gradescope's shape. The writers are registered in `extensions.py` (`writer`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from ..config import AssignmentConfig
from ..extensions import load
from ..outcomes import SubmissionResult
from .feedback import feedback_html, feedback_text
from .results_json import gradescope_json

RESULTS_DIR = "results"
FEEDBACK_DIR = "feedback"
INSTRUCTOR_DIR = "instructor"


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def results_path(out: Path, submission: str) -> Path:
    return out / RESULTS_DIR / f"{submission}.json"


def write_gradescope(out: Path, result: SubmissionResult, config: AssignmentConfig) -> None:
    atomic_write(results_path(out, result.submission), json.dumps(gradescope_json(result, config), indent=2))


def write_feedback(out: Path, result: SubmissionResult, config: AssignmentConfig) -> None:
    """The student's files (`feedback/`, fit to hand out) and the instructor's (`instructor/`: everything)."""
    for folder, audience in ((FEEDBACK_DIR, "student"), (INSTRUCTOR_DIR, "instructor")):
        atomic_write(out / folder / f"{result.submission}.txt", feedback_text(result, audience))
        atomic_write(out / folder / f"{result.submission}.html", feedback_html(result, audience))


Writer = Callable[[Path, SubmissionResult, AssignmentConfig], None]


def get_writer(name: str) -> Writer:
    """A result writer of the `writer` registry (`extensions.py`)."""
    return load("writer", name)


def write_result(out: Path, result: SubmissionResult, config: AssignmentConfig,
                 writers: tuple[str, ...] = ("feedback", "gradescope")) -> None:
    """Write one submission's files (it is recorded already)."""
    for name in writers:
        get_writer(name)(out, result, config)
