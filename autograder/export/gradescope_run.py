"""Inside Gradescope's container: grade the one notebook of `<root>/submission` into `<root>/results/results.json`.

`run_autograder` runs this (`python -m autograder.export.gradescope_run --root R --bundle B`). A container
holds one student's submission, and Gradescope reads one results.json from it, so this always writes one:
the grade (`report.gradebook.gradescope_json`, the same file `grade` writes in `results/`), a zero with the
reason for a submission that is not one notebook (none, several, an empty or unreadable file), or a zero
that says the grader failed. The instructor's view (every message, integrity findings) goes to stdout,
which the results keep hidden from students (`stdout_visibility`).

Isolation (`TORCHGRADE_ISOLATION`): `auto`, the default, grades in a bubblewrap sandbox where the container
allows user namespaces, else (Gradescope's containers run as root, and Docker's default profile usually
refuses new user namespaces) as an unprivileged uid of its own (`user`, `kernel/isolation_user.py`): the
bundle is closed to other users first (0700), so the notebook can neither read the checks and reference
nor touch its own grade. Where neither can run (not root), the
notebook runs as the grader's user in the container, which Gradescope gives to this one submission: it
cannot reach another student's work or grade, but it could read the assignment's checks and reference, and
tamper with its own grade; integrity findings still flag the tricks torchgrade knows. `bwrap` and `user`
insist on their sandbox; `none` never uses one. The results name the isolation in `extra_data.isolation`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as cli.py: before torch loads

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

NO_SUBMISSION = "submission"  # the name of a submission without a notebook


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = args.root / "results" / "results.json"
    start = time.perf_counter()
    try:
        data = grade_container(args.root, args.bundle, os.environ.get("TORCHGRADE_ISOLATION", "auto"),
                               os.environ.get("TORCHGRADE_DEVICE", "cpu"))
    except Exception as exc:  # the grader failed: still a results.json, saying so
        traceback.print_exc(file=sys.stdout)
        data = grader_failed(exc, time.perf_counter() - start)
    write_json(results, data)
    print(f"wrote {results}: {data['score']:g} points")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    parser.add_argument("--root", type=Path, default=root, help="the autograder's root (default $AUTOGRADER_ROOT "
                                                                "or /autograder)")
    parser.add_argument("--bundle", type=Path, help="the autograder bundle (default <root>/source/bundle)")
    args = parser.parse_args(argv)
    args.bundle = args.bundle or args.root / "source" / "bundle"
    return args


def grade_container(root: Path, bundle: Path, isolation: str, device: str) -> dict:
    from ..build.assignment import load_assignment
    from ..report.results_json import gradescope_json
    from ..outcomes import SubmissionResult

    assignment = load_assignment(bundle)
    config = assignment.config
    notebook, problem = find_notebook(root / "submission", config.notebook)
    if problem:
        result = SubmissionResult.ungraded_row(notebook.stem if notebook else NO_SUBMISSION, "invalid", problem,
                                              config.questions, phase="read")
        used = None  # nothing ran
        print(problem)
    else:
        used = choose_isolation(isolation)
        if used == "user":
            close_to_others(bundle)
        result = grade_one(assignment, notebook, used, device)
    data = gradescope_json(result, config)
    data["stdout_visibility"] = "hidden"  # the instructor's view of this submission, printed below
    data["extra_data"]["isolation"] = result.isolation or used
    return data


def find_notebook(folder: Path, expected: str) -> tuple[Path | None, str]:
    """The submission's one notebook, or why there is not exactly one."""
    from ..grading.submissions import notebooks_in

    notebooks = notebooks_in(folder) if folder.is_dir() else []
    if len(notebooks) == 1:
        return notebooks[0], ""
    if not notebooks:
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
            if folder.is_dir() else []
        seen = f" (the submission holds: {', '.join(files[:10])}{', ...' if len(files) > 10 else ''})" if files else ""
        return None, f"no notebook (.ipynb) was submitted{seen}; submit your {expected}"
    names = ", ".join(p.relative_to(folder).as_posix() for p in notebooks)
    return None, f"several notebooks were submitted ({names}); submit exactly one: your {expected}"


def choose_isolation(wanted: str) -> str:
    """`TORCHGRADE_ISOLATION` resolved: a name of the `isolation` registry, or `auto` (bwrap, user, none)."""
    from ..errors import ConfigError
    from ..extensions import choices
    from ..kernel.isolation_user import pick_isolation

    known = ("auto", *choices("isolation"))
    if wanted not in known:
        raise ConfigError(f"TORCHGRADE_ISOLATION must be one of {', '.join(known)}, not {wanted!r}")
    used, why = pick_isolation(wanted)
    if why:
        print(f"{why} (the container holds this one submission)" if used == "none" else why)
    return used


def close_to_others(bundle: Path) -> None:
    """Under `user`: the bundle (checks, reference, hidden data) closed to the kernel's uid. The container is this
    grading's alone, so its own copy may be closed in place. The grader's output is a 0700 temporary folder, and
    the results folder is root's: the kernel can write neither."""
    os.chmod(bundle, 0o700)


def grade_one(assignment, notebook: Path, isolation: str, device: str):
    from ..config import GradeSettings
    from ..grading.batch import grade_batch
    from ..grading.submissions import Submission
    from ..report.feedback import feedback_text
    from ..report.outbox import Outbox

    settings = GradeSettings(device=device, isolation=isolation)
    with tempfile.TemporaryDirectory(prefix="torchgrade-gradescope-") as out:
        report = grade_batch(assignment, [Submission(notebook.stem, notebook)], settings,
                             Outbox(Path(out), assignment.config))  # (a fresh folder: nothing to resume)
    result = report.graded[0]
    print(feedback_text(result, "instructor"))
    return result


def grader_failed(exc: Exception, seconds: float) -> dict:
    detail = (str(exc).strip().splitlines() or [""])[0]
    return {
        "score": 0.0,
        "execution_time": round(seconds, 2),
        "output": f"The autograder failed before it could grade this submission ({type(exc).__name__}: {detail}). "
                  "Please tell your instructor; this is not a grade.",
        "tests": [],
        "stdout_visibility": "hidden",
        "extra_data": {"status": "error"},
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
