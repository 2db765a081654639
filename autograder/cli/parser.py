"""The `torchgrade` command: assign, check, grade, demo."""

from __future__ import annotations

import os

# Idle OpenMP threads of the grader (and of the workers it starts) sleep instead of spinning on the cores
# the kernels need; read once, when torch loads, so set before anything imports it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
from pathlib import Path

from .. import __version__
from ..config import DEVICES
from ..errors import TorchgradeError
from ..extensions import choices


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run == "cmd_grade":  # the kernels' fork server imports torch while this process imports the rest
        from .early import start_kernels_early

        start_kernels_early(args)
    from . import commands  # torch and the kernel machinery load only now: `--help` stays fast
    from rich.markup import escape

    from ..report.terminal import console

    try:
        return getattr(commands, args.run)(args)
    except TorchgradeError as exc:
        console.print("[bold red]error:[/]", escape(str(exc)))
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: grades already written are kept; rerun to resume[/]")
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchgrade", description="Autograding for PyTorch courses.")
    parser.add_argument("--version", action="version", version=f"torchgrade {__version__}")
    sub = parser.add_subparsers(required=True, metavar="command")

    p = sub.add_parser("assign", help="build the student and autograder bundles and prove them")
    p.add_argument("source", type=Path, help="assignment folder (assignments/<name>)")
    p.add_argument("--out", type=Path, required=True, help="output folder (dist/<name>)")
    add_device(p)
    p.set_defaults(run="cmd_assign")

    p = sub.add_parser("grade", help="grade submissions and write the gradebook")
    p.add_argument("assignment", type=Path, help="assignment folder or autograder bundle")
    p.add_argument("submissions", type=Path, nargs="+", help="notebooks or folders of notebooks")
    p.add_argument("--out", type=Path, required=True, help="folder for gradebook.csv, results/, feedback/")
    add_device(p)
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument("--timeout", type=float, help="whole-notebook time limit in seconds (overrides the assignment's)")
    p.add_argument("--force", action="store_true", help="grade again submissions already in --out")
    p.add_argument("--name-from", choices=choices("layout"), default="auto",
                   help="what names a submission: its file, its folder (a folder per student or Gradescope's "
                        "submission_* folders), or --name-pattern on LMS download names (default auto: folders "
                        "holding one notebook each, else Canvas-style names, else file names)")
    p.add_argument("--name-pattern", metavar="REGEX",
                   help="regular expression for file names with a 'student' group and an optional 'id' group "
                        "(default Canvas's name_[LATE_]userid_subid_file)")
    p.add_argument("--isolation", choices=("auto", *choices("isolation")), default="auto",
                   help="how kernels are kept from the grader: bubblewrap namespaces (bwrap), an unprivileged uid "
                        "per kernel (user; needs root, for hosts without user namespaces), or none; default auto: "
                        "bwrap, else user as root, else refuse")
    p.add_argument("--no-isolation", action="store_true",
                   help="run kernels without a sandbox (trusted notebooks only: a submission could then read the "
                        "reference, change other grades and outlive its kernel); the same as --isolation none")
    p.add_argument("--no-figures", action="store_true",
                   help="leave the assignment's feedback figures out (each costs some tenths of a second per "
                        "submission)")
    p.add_argument("--executor", choices=choices("executor"), default="local",
                   help="where submissions are graded: worker processes here (local, the default) or the workers "
                        "of a Dask cluster (dask; needs torchgrade[dask])")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="the Dask scheduler, e.g. tcp://HOST:8786 (with --executor dask; default: a LocalCluster "
                        "of --jobs processes on this machine)")
    p.add_argument("--anonymize", action="store_true",
                   help="pseudonyms instead of names in everything a grader reads (report, similarity and instructor "
                        "pages); the key stays in the records, LMS exports keep the real ids")
    p.add_argument("--submitted-at", type=Path, metavar="CSV",
                   help="submission times for the late policy: `submission,submitted_at` (ISO times with a zone); "
                        "default: Gradescope's submission_metadata.yml, else Canvas's LATE_ marker")
    p.add_argument("--extensions", type=Path, metavar="ROSTER",
                   help="a roster (Canvas export, Moodle worksheet or CSV) with an `extension` column, in hours")
    p.set_defaults(run="cmd_grade")

    p = sub.add_parser("check", help="run the public checks on a notebook in a fresh kernel")
    p.add_argument("notebook", type=Path)
    p.add_argument("--assignment", type=Path, help="student folder holding .torchgrade/ (default: the notebook's)")
    p.set_defaults(run="cmd_check")

    p = sub.add_parser("export", help="package an assignment for another platform")
    targets = p.add_subparsers(required=True, metavar="target")
    g = targets.add_parser("gradescope", help="a Gradescope autograder zip (setup.sh, run_autograder, the bundle)")
    g.add_argument("assignment", type=Path, help="assignment folder or autograder bundle")
    g.add_argument("--out", type=Path, required=True, help="the zip to write (e.g. autograder.zip)")
    g.set_defaults(run="cmd_export", target="gradescope")
    f = targets.add_parser("feedback", help="students' feedback as a zip an LMS bulk-imports (moodle, canvas) or zip")
    f.add_argument("out", type=Path, help="the folder `grade --out` wrote")
    f.add_argument("--format", choices=choices("feedback"), required=True,
                   help="moodle: upload multiple feedback files in a zip; canvas: re-upload submissions (comments); "
                        "zip: a folder per submission")
    f.add_argument("--roster", type=Path, help="Moodle's grading worksheet, where submissions are not named as "
                                               "Moodle's download names them")
    f.add_argument("--output", type=Path, help="the zip to write (default <out>/feedback-<format>.zip)")
    f.set_defaults(run="cmd_export_feedback")

    p = sub.add_parser("adjust", help="record an override or a bonus (or undo one, or import a grading sheet)")
    p.add_argument("out", type=Path, help="the folder `grade --out` wrote")
    p.add_argument("target", nargs="*", metavar="SUBMISSION [QUESTION] POINTS",
                   help="a question's points set (override), or without a question points added to the total (bonus)")
    p.add_argument("--reason", help="why (shown to the student in the feedback)")
    p.add_argument("--undo", type=int, metavar="ID", help="undo the adjustment with this id (see --list)")
    p.add_argument("--from", dest="sheet", type=Path, metavar="SHEET", help="a grading sheet (`torchgrade sheet`) "
                                                                            "with points filled in")
    p.add_argument("--list", action="store_true", help="list the adjustments in force")
    p.set_defaults(run="cmd_adjust")

    p = sub.add_parser("sheet", help="a grading sheet for a manual question (CSV and an HTML page)")
    p.add_argument("out", type=Path, help="the folder `grade --out` wrote")
    p.add_argument("--question", required=True, help="the question's id")
    p.add_argument("--output", type=Path, help="folder for <question>.csv and .html (default <out>/sheets)")
    p.set_defaults(run="cmd_sheet")

    p = sub.add_parser("report", help="write the instructor report of a --out folder again")
    p.add_argument("out", type=Path, help="the folder `grade --out` wrote")
    p.add_argument("--anonymize", action="store_true", help="pseudonyms instead of names from now on")
    p.set_defaults(run="cmd_report")

    p = sub.add_parser("gradebook", help="write the grades of a --out folder for an LMS, matched to a roster")
    p.add_argument("out", type=Path, help="the folder `grade --out` wrote")
    p.add_argument("--roster", type=Path, required=True,
                   help="Canvas's gradebook export, Moodle's grading worksheet, or a CSV with a `submission` column "
                        "and the students' name, id, sis_user_id, sis_login_id, section, email")
    p.add_argument("--format", choices=choices("lms"), default="csv",
                   help="canvas (gradebook import), moodle (grade import) or csv (default)")
    p.add_argument("--output", type=Path, help="file to write (default <out>/gradebook-<format>.csv)")
    p.add_argument("--title", help="the assignment's name in the LMS (default: the out folder's name)")
    p.add_argument("--assignment-id", default="", help="the LMS's id of the assignment (Canvas: `Title (id)`)")
    p.set_defaults(run="cmd_gradebook")

    p = sub.add_parser("new", help="scaffold a working one-question assignment to edit (docs/authoring.md)")
    p.add_argument("name", help="the assignment's name (a Python identifier: letters, digits, underscores)")
    p.add_argument("--out", type=Path, help="folder to write (default ./<name>; must not exist or be empty)")
    p.set_defaults(run="cmd_new")

    p = sub.add_parser("validate", help="prove an assignment: assign's proof, every example against "
                                        "examples/expected.toml, the self-check replayed on each")
    p.add_argument("assignment", type=Path, help="assignment folder (with examples/expected.toml)")
    p.add_argument("--out", type=Path, help="where to build the bundles (default: a temporary folder)")
    add_device(p)
    p.set_defaults(run="cmd_validate")

    p = sub.add_parser("ops", help="print the aten operators a PyTorch expression dispatches to (for Forbid)")
    p.add_argument("expression", help='e.g. "F.softmax(x, dim=1)"; torch, F and nn are imported, and sample '
                                      "tensors x (2×3×4×4), w (5×3×3×3), y (labels of x's batch), image (8×8) "
                                      "and kernel (3×3) are defined; operators that make tensors inside it "
                                      "are listed too: make other inputs with --setup")
    p.add_argument("--setup", metavar="CODE", help='statements run first, unrecorded, e.g. "s = torch.randn(10)" for '
                                                   'a 1-D input')
    p.set_defaults(run="cmd_ops")

    p = sub.add_parser("demo", help="build an assignment and grade its example submissions, offline on CPU")
    p.add_argument("--assignment", default="convolution", help="which assignment (default convolution)")
    p.add_argument("--out", type=Path, default=Path("torchgrade-demo"), help="output folder")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="examples graded at once (default: 2, or 1 on a one-core machine)")
    p.set_defaults(run="cmd_demo")
    return parser


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where student models run (default cpu)")
    p.add_argument("--threads", type=int, help="torch/OpenMP threads per kernel (default: cores / jobs)")

