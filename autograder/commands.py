"""What each `torchgrade` command does; imported only once the command line is parsed (torch is heavy)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .assign import assign, build_bundles
from .assignment import STUDENT_META, load_assignment
from .batch import grade_batch
from .checks.render import outcomes_text, public_summary
from .config import GradeSettings
from .errors import ConfigError
from .kernel.isolation import trusted_isolation
from .pipeline import grade_submission
from .report.gradebook import FEEDBACK_DIR, GRADEBOOK, INSTRUCTOR_DIR, RESULTS_DIR
from .report.terminal import console, print_gradebook, print_progress
from .submissions import find_submissions


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
