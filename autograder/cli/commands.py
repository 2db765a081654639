"""What each `torchgrade` command does; imported only once the command line is parsed.

Each command imports what it needs when it runs: `gradebook` (a CSV join over the records) loads neither torch
nor pandas, and the others pay for torch only when they run.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import import_module
from pathlib import Path

from rich.markup import escape

from ..config import GradeSettings
from ..errors import ConfigError, InvalidSubmission, TorchgradeError
from ..report.terminal import console


def cmd_assign(args: argparse.Namespace) -> int:
    from ..adjustments import amount
    from ..grading.proof import assign
    from ..kernel.isolation import trusted_isolation

    settings = GradeSettings(device=args.device, threads=args.threads, isolation=trusted_isolation())
    report = assign(args.source, args.out, settings)
    console.print(f"[bold green]built[/] {escape(report.name)} in {report.seconds:.1f} s")
    written = [q for q in report.solution.questions if q.manual]  # a person grades them: not in the proof
    automatic = report.solution.max_automatic
    console.print(f"  solution: {report.solution.total:g}/{automatic:g}   blank: {report.blank.total:g}/{automatic:g}   "
                  "public self-checks pass on the solution, run on the blank")
    if written:
        console.print(f"  written answers, for a person to grade: {', '.join(q.id for q in written)} "
                      f"({amount(sum(q.max_points for q in written), 'point')})", markup=False)
    console.print(f"  student bundle:    {report.student_dir}", markup=False)
    console.print(f"  to hand out:       {report.student_zip} (the notebook, its .torchgrade/ folder and any data/)",
                  markup=False)
    console.print(f"  autograder bundle: {report.autograder_dir}", markup=False)
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from ..build.assignment import load_assignment
    from ..grading.submissions import find_submissions
    from .run_batch import run_batch

    import_module("autograder.report.course")  # what `record_grading` needs, imported while the workers start

    assignment = load_assignment(args.assignment, lazy=True)  # its checks load where they run (the batch's check)
    if assignment.kind == "student":
        raise ConfigError("this is a student bundle; grade with the autograder bundle or the source folder",
                          args.assignment)
    settings = GradeSettings(device=args.device, jobs=args.jobs, force=args.force, timeout=args.timeout,
                             threads=args.threads, isolation=grading_isolation(args),
                             executor=args.executor, scheduler=args.scheduler, figures=not args.no_figures)
    if args.scheduler and args.executor != "dask":
        raise ConfigError("--scheduler is for --executor dask")
    submissions = find_submissions(args.submissions, args.name_from, args.name_pattern)
    if not submissions:
        raise ConfigError("no notebooks found", args.submissions[0])
    from ..report.course import unused_times

    unused = unused_times(assignment.config, args.submitted_at, args.extensions, assignment.kind != "source")
    if unused:  # said before the batch, not lost in its output
        console.print(f"[yellow]warning[/]: {escape(unused)}")
    if settings.isolation == "user":  # the kernel's uid reads what "others" may: nothing of the grader's
        from ..kernel.isolation_user import seal

        seal(args.out, [args.assignment, *(s.path for s in submissions), *checkout_secrets()])
    if assignment.kind == "source":  # grade exactly as from a bundle: data, hidden files and all
        from ..build.bundles import build_bundles

        with tempfile.TemporaryDirectory(prefix="torchgrade-bundle-") as tmp:
            _, autograder = build_bundles(assignment.root, Path(tmp))
            bundle = load_assignment(autograder, lazy=True)
            run_batch(bundle, submissions, args.out, settings,
                      on_ready=lambda: record_grading(args, bundle, submissions))
    else:
        run_batch(assignment, submissions, args.out, settings,
                  on_ready=lambda: record_grading(args, assignment, submissions))
    return 0


def grading_isolation(args: argparse.Namespace) -> str:
    """`--isolation` resolved (`auto`: bwrap, else user as root; else bwrap, which the batch refuses, naming what
    is missing); `--no-isolation` is `none`."""
    from ..kernel.isolation_user import pick_isolation

    if args.no_isolation:
        if args.isolation not in ("auto", "none"):
            raise ConfigError(f"--no-isolation contradicts --isolation {args.isolation}")
        return "none"
    name, why = pick_isolation(args.isolation)
    if name == "none" and args.isolation == "auto":
        return "bwrap"
    if why:
        console.print(f"[yellow]{escape(why)}[/]")
    return name


def checkout_secrets() -> list[Path]:
    """The master notebooks and references of a source checkout that torchgrade runs from, if it does."""
    repo = Path(__file__).resolve().parents[2]
    return [repo / name for name in ("assignments", "reference") if (repo / name).is_dir()]


def record_grading(args: argparse.Namespace, assignment, submissions) -> None:
    """Before a batch: what its results are adjusted with (times, extensions, late policy, anonymity, rubrics), and
    the adjustments a regrade keeps, said."""
    from ..build.assignment import BLANK_NAME, BUNDLE_SOLUTION
    from ..report.course import record_config, record_course
    from ..report.records import RECORDS, Records

    if (args.out / RECORDS).is_file():
        records = Records(args.out)
        names = {s.name for s in submissions}
        kept = [a for a in records.adjustments() if a.submission in names]
        records.close()
        if kept:
            console.print(f"keeping {len(kept)} adjustment(s) of the submissions graded again (undo with "
                          "`torchgrade adjust OUT --undo ID`):")
            for a in kept:
                console.print(f"  #{a.id} {a.submission} {a.question or 'bonus'} {a.points:g}: {a.reason}",
                              markup=False)
    manual = [q.id for q in assignment.config.questions if q.kind == "manual"]
    rubrics = {}
    if manual and (assignment.root / BUNDLE_SOLUTION).is_file():
        from ..build.notebook import read_submission, tagged_cells  # nbformat: a sixth of a second before the batch

        solution = read_submission(assignment.root / BUNDLE_SOLUTION)
        rubrics = {q: "\n\n".join(tagged_cells(solution, f"rubric:{q}")) for q in manual}
    folders = [p for p in args.submissions if p.is_dir()]
    record_course(args.out, assignment.config, [(s.name, s.path) for s in submissions], folders,
                  args.submitted_at, args.extensions, args.anonymize, rubrics)
    record_config(args.out, assignment.config, assignment.root / BLANK_NAME)


def cmd_adjust(args: argparse.Namespace) -> int:
    from ..export.sheet import import_sheet
    from ..report.course import refresh
    from ..report.lms import recorded_results
    from ..report.records import Records

    results = {r.submission: r for r in recorded_results(args.out)}  # refuses a folder without records
    records = Records(args.out)
    try:
        from ..report.anonymity import pseudonyms

        shown = pseudonyms(records, list(results))  # under --anonymize, what graders read: never a real name
        real = {alias: name for name, alias in shown.items()}
        if args.list:
            for a in records.adjustments():
                console.print(f"#{a.id} {shown.get(a.submission, a.submission)} {a.question or 'bonus'} {a.points:g} "
                              f"by {a.who} at {a.at}: {a.reason}", markup=False)
            return 0
        if args.undo is not None:
            a = records.undo_adjustment(args.undo)
            console.print(f"[bold green]undone[/] #{a.id} {escape(shown.get(a.submission, a.submission))} "
                          f"{escape(a.question or 'bonus')}")
        elif args.sheet is not None:
            records.close()
            added = import_sheet(args.out, args.sheet)
            console.print(f"[bold green]recorded[/] {len(added)} score(s) from {escape(str(args.sheet))}")
            waiting = still_to_grade(args.out, args.sheet)
            if waiting:  # rows left blank: still pending, said
                console.print(f"  still to grade: {len(waiting)} submission(s): " + ", ".join(
                    f"{shown.get(name, name)} ({', '.join(ids)})" for name, ids in sorted(waiting.items())),
                    markup=False)
        else:
            a = records.add_adjustment(*adjustment_args(args, results, real))
            console.print(f"[bold green]recorded[/] #{a.id}: {escape(shown.get(a.submission, a.submission))} "
                          f"{escape(a.question or 'bonus')} {a.points:g} ({escape(a.reason)}), by {escape(a.who)}")
    finally:
        records.close()
    refresh(args.out)
    console.print(f"  gradebook, results, feedback and report of {args.out} written again", markup=False)
    return 0


def still_to_grade(out: Path, sheet: Path) -> dict[str, list[str]]:
    """The written answers of the sheet's questions still without points: submission → question ids (graded rows
    only: a submission the grader failed on is listed by the gradebook)."""
    import csv

    from ..report.records import Records

    with open(sheet, encoding="utf-8-sig", newline="") as f:
        questions = {(row.get("question") or "").strip() for row in csv.DictReader(f)}
    records = Records(out)
    try:
        return {r.submission: ids for r in records.results() if not r.ungraded
                for ids in [[q for q in r.needs_grading if q in questions]] if ids}
    finally:
        records.close()


def adjustment_args(args: argparse.Namespace, results: dict, real: dict[str, str]) -> tuple[str, str, float, str]:
    """`SUBMISSION [QUESTION] POINTS --reason TEXT`, checked against the records; SUBMISSION may be the pseudonym
    graders see (`real`: pseudonym → name)."""
    if len(args.target) not in (2, 3):
        raise ConfigError("adjust takes SUBMISSION [QUESTION] POINTS --reason TEXT (or --undo ID, --from SHEET, "
                          "--list)")
    if not args.reason:
        raise ConfigError("an adjustment needs --reason (the student sees it in the feedback)")
    submission, *question, points = args.target
    submission = real.get(submission, submission)
    if submission not in results:
        raise ConfigError(f"no submission {submission!r} in these records", args.out)
    try:
        value = float(points)
    except ValueError:
        raise ConfigError(f"points {points!r} is not a number") from None
    if question:
        q = next((q for q in results[submission].questions if q.id == question[0]), None)
        if q is None:
            raise ConfigError(f"no question {question[0]!r}; questions: "
                              f"{', '.join(q.id for q in results[submission].questions)}")
        if not 0 <= value <= q.max_points:
            raise ConfigError(f"{value:g} points is outside 0 to {q.max_points:g} for {q.id}")
    return submission, question[0] if question else "", value, args.reason


def cmd_sheet(args: argparse.Namespace) -> int:
    from ..export.sheet import write_sheet
    from ..report.lms import recorded_results

    recorded_results(args.out)
    sheet = write_sheet(args.out, args.question, args.output)
    console.print(f"[bold green]wrote[/] the grading sheet of {escape(args.question)}: {sheet.rows} submission(s), "
                  f"{sheet.graded} graded")
    console.print(f"  csv:  {sheet.csv}\n  page: {sheet.html}\n  then: torchgrade adjust {args.out} --from "
                  f"{sheet.csv}", markup=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.course import BLANK_COPY
    from ..report.instructor import write_report
    from ..report.lms import recorded_results

    recorded_results(args.out)
    blank = args.out / BLANK_COPY
    path = write_report(args.out, blank if blank.is_file() else None, args.out.resolve().name,
                        anonymize=args.anonymize)
    console.print(f"[bold green]wrote[/] {path}", markup=False)
    return 0


def cmd_export_feedback(args: argparse.Namespace) -> int:
    from ..export.feedback import export_feedback
    from ..report.lms import recorded_results

    recorded_results(args.out)
    report = export_feedback(args.out, args.format, args.output, args.roster)
    console.print(f"[bold green]wrote[/] {args.format} feedback for {len(report.written)} submission(s): "
                  f"{escape(str(report.output))}")
    for name, why in report.skipped.items():
        console.print(f"  [yellow]left out[/] {escape(name)}: {escape(why)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..build.notebook import read_submission
    from ..grading.pipeline import grade_submission
    from ..render import outcomes_text, public_summary, public_total

    if args.notebook.is_dir():
        raise ConfigError("a folder, not a notebook: pass the notebook (.ipynb) to check", args.notebook)
    if not args.notebook.is_file():
        raise ConfigError("no such notebook", args.notebook)
    try:
        read_submission(args.notebook)  # a file that is no notebook is said to be one, before any check
    except InvalidSubmission as exc:
        raise ConfigError(exc.message, args.notebook) from None
    with tempfile.TemporaryDirectory(prefix="torchgrade-check-") as unpacked:
        assignment = self_check_of(args.notebook, args.assignment, Path(unpacked))
        result = grade_submission(args.notebook, assignment, GradeSettings(isolation="none"))  # the student's own work
    if result.status != "ok":
        console.print(f"[yellow]{escape(result.status)}[/]: {escape(result.message)}")
    for error in result.cell_errors:
        console.print(f"[yellow]{escape(error)}[/]")
    all_passed = result.status == "ok"  # a notebook that did not run to its end has not passed
    for q in result.questions:
        all_passed &= all(o.passed for o in q.outcomes)
        console.print(public_summary(q.id, q.outcomes, q.manual), style="bold", markup=False)
        for line in outcomes_text(q.outcomes, "student", symbols=True):
            console.print(line, markup=False, soft_wrap=True)  # long lines left to the terminal, not cut mid-word
    console.print(public_total([o for q in result.questions for o in q.outcomes], result.status == "ok"),
                  style="bold", markup=False)
    return 0 if all_passed else 1


def self_check_of(notebook: Path, folder: Path | None, unpacked: Path):
    """The public checks `torchgrade check` runs on `notebook`, said with where they come from: the `.torchgrade/`
    of `folder` (`--assignment`) or of the notebook's folder, else the notebook's packed cell (unpacked under
    `unpacked`, read, not run); what the assignment hands out beside the notebook and is not there, said too."""
    from ..build.assignment import STUDENT_META, load_assignment, load_student_checks, missing_beside, \
        missing_beside_text
    from ..build.embed import files_beside, unpack

    where = Path(folder or notebook.resolve().parent)
    if (where / STUDENT_META).is_dir() or where.name == STUDENT_META:
        assignment = load_assignment(where)
        console.print(f"checking {notebook.name} with the self-check of {assignment.root / STUDENT_META}", markup=False)
        packed = packed_name(notebook, unpacked / "packed")
        if packed is not None and packed != assignment.name:
            console.print(f"this notebook is of the assignment {packed!r}, the folder's self-check of "
                          f"{assignment.name!r}: check it with the folder handed out with it", style="yellow",
                          markup=False)
        missing = missing_beside(assignment.config, assignment.root)  # the kernel's files come from there
    elif folder is not None:
        raise ConfigError(f"no {STUDENT_META}/ folder here: pass the student folder", where)
    elif (meta := unpack(notebook, unpacked)) is not None:  # the notebook alone: its packed cell's checks
        try:
            files, missing = files_beside(meta, notebook, unpacked)  # and what it reads beside it
            assignment = load_student_checks(meta, root=files)
        except TorchgradeError as exc:  # said of the notebook: the unpacked copy is gone once this returns
            raise ConfigError(f"the notebook's packed self-check does not load ({exc.message})", notebook) from None
        console.print(f"checking {notebook.name} with its packed self-check (no {STUDENT_META}/ folder beside it)",
                      markup=False)
    else:
        raise ConfigError(f"no {STUDENT_META}/ folder beside it, and no packed self-check cell in it: pass "
                          f"--assignment <student folder>", notebook)
    if missing:
        console.print(missing_beside_text(missing), style="yellow", markup=False)
    return assignment


def packed_name(notebook: Path, into: Path) -> str | None:
    """The name of the assignment whose self-check the notebook's packed cell carries, if it has a readable one."""
    from ..build.embed import unpack
    from ..config import CONFIG_NAME, AssignmentConfig

    try:
        meta = unpack(notebook, into)
        return AssignmentConfig.load(meta / CONFIG_NAME).name if meta is not None else None
    except TorchgradeError:  # a damaged cell: the folder's self-check serves
        return None


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


def cmd_new(args: argparse.Namespace) -> int:
    from ..build.scaffold import scaffold

    folder = scaffold(args.name, args.out)
    console.print(f"[bold green]created[/] {escape(args.name)} in {escape(str(folder))}")
    for line in (f"  edit: {folder / args.name}.ipynb (the questions), checks/public.py and checks/hidden.py, "
                 "reference.py, examples/",
                 f"  then: torchgrade validate {folder}",
                 "  guide: docs/authoring.md in torchgrade's repository"):
        console.print(line, markup=False)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from ..grading.validate import summary_lines, validate
    from ..kernel.isolation import trusted_isolation

    settings = GradeSettings(device=args.device, threads=args.threads, isolation=trusted_isolation())
    report = validate(args.assignment, args.out, settings)
    for line in summary_lines(report):
        console.print(line, markup=False)
    if report.ok:
        written = [q.id for q in next(iter(report.results.values())).questions if q.manual] if report.results else []
        console.print(f"[bold green]valid[/] {escape(report.name)}: solution full marks, blank zero, "
                      f"{len(report.results) - 2} example(s) as expected.toml says, the self-check runs on each"
                      + (f" (written answers, for a person to grade: {escape(', '.join(written))})" if written else ""))
        return 0
    console.print(f"[bold red]{len(report.problems)} problem(s)[/] in {escape(report.name)}:")
    for problem in report.problems:
        console.print(f"- {problem}", markup=False)
    return 1


def cmd_ops(args: argparse.Namespace) -> int:
    from ..checks.ops import operators

    try:
        names = operators(args.expression, setup=args.setup or "")
    except Exception as exc:  # the author's expression: say what it raised
        raise ConfigError(f"the {'setup or the ' if args.setup else ''}expression raised {type(exc).__name__}: {exc}") \
            from exc
    console.print("\n".join(names) if names else "(no aten operator)", markup=False)
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
            who = ", ".join(x for x in (s.name, s.id or s.sis_user_id or s.sis_login_id or s.participant or s.email)
                            if x)
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
            unrun = list(dict.fromkeys(o.question for o in r.unresolved_errors))
            why = r.message if r.ungraded else "; ".join(
                [*([f"written answers to grade: {', '.join(r.needs_grading)} (torchgrade sheet OUT --question Q)"]
                   if r.needs_grading else []),
                 *([f"checks the grader could not run in {', '.join(unrun)} (look, then set the points with "
                    "torchgrade adjust)"] if unrun else [])])
            console.print(f"  {r.submission}: {why}", markup=False)
    return 0
