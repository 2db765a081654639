"""What each `torchgrade` command does; imported only once the command line is parsed.

Each command imports what it needs when it runs: `gradebook` (a CSV join over the records) loads neither torch
nor pandas, and the others pay for torch only when they run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.markup import escape

from ..config import GradeSettings
from ..errors import ConfigError
from ..report.terminal import console


def cmd_assign(args: argparse.Namespace) -> int:
    from ..grading.proof import assign
    from ..kernel.isolation import trusted_isolation

    settings = GradeSettings(device=args.device, threads=args.threads, isolation=trusted_isolation())
    report = assign(args.source, args.out, settings)
    console.print(f"[bold green]built[/] {escape(report.name)} in {report.seconds:.1f} s")
    console.print(f"  solution: {report.solution.total:g}/{report.solution.max_total:g}   "
                  f"blank: {report.blank.total:g}/{report.blank.max_total:g}   public self-checks pass on the solution")
    console.print(f"  student bundle:    {report.student_dir}", markup=False)
    console.print(f"  autograder bundle: {report.autograder_dir}", markup=False)
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from ..build.assignment import load_assignment
    from ..build.bundles import build_bundles
    from ..grading.submissions import find_submissions
    from .run_batch import run_batch

    assignment = load_assignment(args.assignment)
    if assignment.kind == "student":
        raise ConfigError("this is a student bundle; grade with the autograder bundle or the source folder",
                          args.assignment)
    settings = GradeSettings(device=args.device, jobs=args.jobs, force=args.force, timeout=args.timeout,
                             threads=args.threads, isolation="none" if args.no_isolation else "bwrap",
                             executor=args.executor, scheduler=args.scheduler, figures=not args.no_figures)
    if args.scheduler and args.executor != "dask":
        raise ConfigError("--scheduler is for --executor dask")
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


def cmd_check(args: argparse.Namespace) -> int:
    from ..build.assignment import STUDENT_META, load_assignment
    from ..grading.pipeline import grade_submission
    from ..render import outcomes_text, public_summary

    folder = args.assignment or args.notebook.resolve().parent
    if not (Path(folder) / STUDENT_META).is_dir() and Path(folder).name != STUDENT_META:
        raise ConfigError(f"no {STUDENT_META}/ folder here; pass --assignment <student folder>", folder)
    assignment = load_assignment(Path(folder))
    result = grade_submission(args.notebook, assignment, GradeSettings(isolation="none"))  # the student's own work
    if result.status != "ok":
        console.print(f"[yellow]{escape(result.status)}[/]: {escape(result.message)}")
    for error in result.cell_errors:
        console.print(f"[yellow]{escape(error)}[/]")
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


def cmd_export(args: argparse.Namespace) -> int:
    from ..export.gradescope import export_gradescope

    report = export_gradescope(args.assignment, args.out)
    console.print(f"[bold green]exported[/] {escape(report.name)} for Gradescope: {report.files} files, "
                  f"{report.bytes / 1e6:.1f} MB")
    console.print(f"  zip: {report.zip_path}", markup=False)
    console.print(f"  upload it as the assignment's autograder (base image Ubuntu; setup.sh installs the CPU build "
                  f"of PyTorch and torchgrade), and set Gradescope's time limit above {report.time_limit / 60:g} "
                  f"minutes, this assignment's budget per submission", markup=False)
    return 0


def cmd_gradebook(args: argparse.Namespace) -> int:
    from ..report.lms import export_lms

    report = export_lms(args.out, args.roster, args.format, args.output, args.title, args.assignment_id)
    matched = report.matched
    console.print(f"[bold green]wrote[/] {report.format} gradebook: {len(matched.graded)} of {len(matched.rows)} "
                  "roster student(s) graded")
    console.print(f"  file: {report.output}", markup=False)
    if matched.missing:
        console.print(f"[yellow]{len(matched.missing)} student(s) without a graded submission[/] (written with an "
                      "empty grade):")
        for s in matched.missing:
            who = ", ".join(x for x in (s.name, s.id or s.sis_user_id or s.sis_login_id or s.email) if x)
            console.print(f"  {who or '(unnamed row)'}" + (f" (roster submission {s.submission!r})"
                                                            if s.submission else ""), markup=False)
    if matched.unmatched:
        console.print(f"[yellow]{len(matched.unmatched)} submission(s) without a student in the roster[/] "
                      f"(listed in {escape(str(report.side_file))}):")
        for r in matched.unmatched:
            console.print(f"  {r.submission}: {r.total:g} / {r.max_total:g}, {r.status}", markup=False)
    if matched.ungraded:
        console.print(f"[yellow]{len(matched.ungraded)} submission(s) without a final grade[/] (empty grade; grade "
                      "them again, or look at the pending questions):")
        for r in matched.ungraded:
            pending = ", ".join(q.id for q in r.questions if q.pending)
            why = r.message if r.ungraded else f"pending: {pending} (checks the grader could not run)"
            console.print(f"  {r.submission}: {why}", markup=False)
    return 0
