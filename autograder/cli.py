"""The `torchgrade` command: assign, check, grade, demo."""

from __future__ import annotations

import os

# Idle OpenMP threads of the grader (and of the workers it starts) sleep instead of spinning on the cores
# the kernels need; read once, when torch loads, so set before anything imports it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import __version__
from .assign import assign, build_bundles
from .assignment import STUDENT_META, load_assignment
from .batch import grade_batch
from .submissions import NAMINGS, find_submissions
from .checks.render import outcomes_text, public_summary
from .config import DEVICES, GradeSettings
from .errors import ConfigError, TorchgradeError
from .kernel.isolation import trusted_isolation
from .report.gradebook import FEEDBACK_DIR, GRADEBOOK, INSTRUCTOR_DIR, RESULTS_DIR
from .pipeline import grade_submission
from .results import SubmissionResult

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TorchgradeError as exc:
        console.print(f"[bold red]error:[/] {exc}")
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
    p.set_defaults(run=cmd_assign)

    p = sub.add_parser("grade", help="grade submissions and write the gradebook")
    p.add_argument("assignment", type=Path, help="assignment folder or autograder bundle")
    p.add_argument("submissions", type=Path, nargs="+", help="notebooks or folders of notebooks")
    p.add_argument("--out", type=Path, required=True, help="folder for gradebook.csv, results/, feedback/")
    add_device(p)
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument("--timeout", type=float, help="whole-notebook time limit in seconds (overrides the assignment's)")
    p.add_argument("--force", action="store_true", help="grade again submissions already in --out")
    p.add_argument("--name-from", choices=NAMINGS, default="auto",
                   help="what names a submission: its file, its folder (a folder per student or Gradescope's "
                        "submission_* folders), or --name-pattern on LMS download names (default auto: folders "
                        "holding one notebook each, else Canvas-style names, else file names)")
    p.add_argument("--name-pattern", metavar="REGEX",
                   help="regular expression for file names with a 'student' group and an optional 'id' group "
                        "(default Canvas's name_[LATE_]userid_subid_file)")
    p.add_argument("--no-isolation", action="store_true",
                   help="run kernels without a sandbox (trusted notebooks only: a submission could then read the "
                        "reference, change other grades and outlive its kernel)")
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("check", help="run the public checks on a notebook in a fresh kernel")
    p.add_argument("notebook", type=Path)
    p.add_argument("--assignment", type=Path, help="student folder holding .torchgrade/ (default: the notebook's)")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("demo", help="build an assignment and grade its example submissions, offline on CPU")
    p.add_argument("--assignment", default="convolution", help="which assignment (default convolution)")
    p.add_argument("--out", type=Path, default=Path("torchgrade-demo"), help="output folder")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.set_defaults(run=cmd_demo)
    return parser


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="cpu", help="where student models run (default cpu)")
    p.add_argument("--threads", type=int, help="torch/OpenMP threads per kernel (default: cores / jobs)")


def cmd_assign(args: argparse.Namespace) -> int:
    settings = GradeSettings(device=args.device, threads=args.threads, isolation=trusted_isolation())
    report = assign(args.source, args.out, settings)
    console.print(f"[bold green]built[/] {report.name} in {report.seconds:.1f} s")
    console.print(f"  solution: {report.solution.total:g}/{report.solution.max_total:g}   "
                  f"blank: {report.blank.total:g}/{report.blank.max_total:g}   public self-checks pass on the solution")
    console.print(f"  student bundle:    {report.student_dir}")
    console.print(f"  autograder bundle: {report.autograder_dir}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    assignment = load_assignment(args.assignment)
    if assignment.kind == "student":
        raise ConfigError("this is a student bundle; grade with the autograder bundle or the source folder",
                          args.assignment)
    settings = GradeSettings(device=args.device, jobs=args.jobs, force=args.force, timeout=args.timeout,
                             threads=args.threads, isolation="none" if args.no_isolation else "bwrap")
    submissions = find_submissions(args.submissions, args.name_from, args.name_pattern)
    if not submissions:
        raise ConfigError("no notebooks found", args.submissions[0])
    if assignment.kind == "source":  # grade exactly as from a bundle: data, hidden files and all
        with tempfile.TemporaryDirectory(prefix="torchgrade-bundle-") as tmp:
            _, autograder = build_bundles(assignment.root, Path(tmp))
            run_batch(load_assignment(autograder), submissions, args.out, settings)
    else:
        run_batch(assignment, submissions, args.out, settings)
    return 0


def run_batch(assignment, submissions, out: Path, settings: GradeSettings):
    start = time.perf_counter()
    sandbox = "in sandboxes" if settings.isolation != "none" else "[yellow]without isolation[/]"
    console.print(f"grading {len(submissions)} submission(s) of [bold]{assignment.name}[/] "
                  f"on {settings.resolved_device()} with {settings.jobs} job(s), {sandbox}")
    report = grade_batch(assignment, submissions, out, settings, on_result=print_progress)
    if report.skipped:
        console.print(f"skipped {len(report.skipped)} already graded (use --force to grade again)")
    print_gradebook(report.gradebook)
    console.print(f"{len(report.graded)} graded in {time.perf_counter() - start:.1f} s")
    console.print(f"  gradebook: {out / GRADEBOOK}\n  results:   {out / RESULTS_DIR}/\n  feedback:  {out / FEEDBACK_DIR}/ "
                  f"(for students)\n  instructor: {out / INSTRUCTOR_DIR}/ (everything, integrity findings included)",
                  markup=False)
    return report


def print_progress(result: SubmissionResult) -> None:
    colour = "green" if result.status == "ok" else "yellow"
    flags = f"  [red]flagged: {', '.join(result.flag_kinds)}[/]" if result.flags else ""
    console.print(f"  {result.submission:<28} {result.total:>6g} / {result.max_total:g}  "
                  f"[{colour}]{result.status}[/]  ({result.execution_time:.1f} s){flags}")


def print_gradebook(frame) -> None:
    table = Table(title="gradebook")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column in ("submission", "status") else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def cmd_check(args: argparse.Namespace) -> int:
    folder = args.assignment or args.notebook.resolve().parent
    if not (Path(folder) / STUDENT_META).is_dir() and Path(folder).name != STUDENT_META:
        raise ConfigError(f"no {STUDENT_META}/ folder here; pass --assignment <student folder>", folder)
    assignment = load_assignment(Path(folder))
    result = grade_submission(args.notebook, assignment, GradeSettings(isolation="none"))  # the student's own work
    if result.status != "ok":
        console.print(f"[yellow]{result.status}[/]: {result.message}")
    for error in result.cell_errors:
        console.print(f"[yellow]{error}[/]")
    all_passed = True
    for q in result.questions:
        all_passed &= all(o.passed for o in q.outcomes)
        console.print(public_summary(q.id, q.outcomes), style="bold", markup=False)
        for line in outcomes_text(q.outcomes, "student", symbols=True):
            console.print(line, markup=False)
    return 0 if all_passed else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.assignment, args.out, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
