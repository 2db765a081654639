"""Running a course: late policy, adjustments, manual questions and their grading sheets, anonymity, feedback for LMSs.

Unit tests without kernels; one end-to-end run (`slow`) grades Canvas-named downloads of a convolution variant with a
late policy and a written question, then adjusts, grades the sheet and writes Canvas's gradebook from its export.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from autograder.adjustments import Adjustment, Timing, adjust, lateness
from autograder.build.notebook import ANSWER_PROMPT, Master, tagged_cells
from autograder.cli.parser import main
from autograder.config import AssignmentConfig, Late, Question
from autograder.errors import ConfigError, TorchgradeError
from autograder.extensions import UnknownExtension
from autograder.export.feedback import export_feedback
from autograder.export.sheet import import_sheet
from autograder.outcomes import Outcome, QuestionScore, SubmissionResult
from autograder.report.anonymity import pseudonym, pseudonyms
from autograder.report.course import record_config, record_course
from autograder.report.gradebook import gradebook_row
from autograder.report.instructor import write_report
from autograder.report.records import RECORDS, SCHEMA_VERSION, Records
from conftest import ASSIGNMENTS

POLICY = Late("2026-03-01T23:59:00+01:00", penalty_per_day=0.1, cap=0.3, grace_minutes=15)


def result(name: str, points=(8.0, 0.0), manual=True, path="") -> SubmissionResult:
    outcome = Outcome("conv2d_small", "conv2d", True, 1.0, points[0] / 8, "ok")
    questions = [QuestionScore("conv2d", points[0], 8.0, [outcome]), QuestionScore("explain", points[1], 2.0,
                                                                                   manual=manual)]
    return SubmissionResult(name, "ok", questions, path=path)


# --- the late policy ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("submitted, extension, periods, penalty", [
    ("2026-03-01T23:59:00+01:00", 0, 0, 0.0),  # on time
    ("2026-03-02T00:10:00+01:00", 0, 0, 0.0),  # inside the 15 minutes of grace
    ("2026-03-02T00:20:00+01:00", 0, 1, 1.0),  # one started day: a tenth of 10 points
    ("2026-03-03T22:58:00Z", 0, 2, 2.0),  # another zone, two started days
    ("2026-03-10T12:00:00+01:00", 0, 9, 3.0),  # capped at 0.3
    ("2026-03-03T12:00:00+01:00", 48, 0, 0.0),  # two days late, but a 48-hour extension
    ("2026-03-03T12:00:00+01:00", 24, 1, 1.0),  # one day over the extended deadline
])
def test_late_penalty_per_started_day_after_grace_capped_with_extensions(submitted, extension, periods, penalty):
    late = lateness(POLICY, Timing(submitted, extension_hours=extension), max_total=10)
    assert late["periods"] == periods and late["penalty"] == penalty


def test_penalty_per_hour_and_the_late_marker_without_a_time():
    hourly = Late("2026-03-01T12:00:00+00:00", penalty_per_hour=0.02, cap=1.0)
    assert lateness(hourly, Timing("2026-03-01T14:30:00+00:00"), 50)["penalty"] == 3.0  # 3 started hours × 2% × 50
    marker = lateness(POLICY, Timing(late_marker=True), 10)
    assert marker["unknown"] and marker["hours_late"] is None and marker["penalty"] == 1.0  # one period, for review
    assert lateness(POLICY, Timing(late_marker=True, extension_hours=24), 10)["penalty"] == 0.0
    assert lateness(None, Timing("2030-01-01T00:00:00+00:00"), 10) == {}
    assert lateness(POLICY, Timing(), 10)["penalty"] == 0.0  # nothing says it was late


def test_late_policy_loads_round_trips_and_refuses_bad_input(tmp_path):
    text = (ASSIGNMENTS / "convolution" / "assignment.toml").read_text()
    path = tmp_path / "assignment.toml"
    path.write_text(text + '\n[late]\ndeadline = "2026-03-01T23:59:00+01:00"\npenalty_per_day = 0.1\ncap = 0.3\n')
    config = AssignmentConfig.load(path)
    assert config.late == Late("2026-03-01T23:59:00+01:00", 0.1, 0.0, 0.3, 0.0)
    path.write_text(config.to_toml())
    assert AssignmentConfig.load(path).late == config.late
    for bad, words in (('deadline = "2026-03-01T23:59:00"', "no time zone"), ('deadline = "tomorrow"', "not an ISO"),
                       ('deadline = "2026-03-01T23:59:00Z"\npenalty_per_day = 10', "fractions")):
        path.write_text(text + f"\n[late]\n{bad}\n")
        with pytest.raises(ConfigError, match=words) as err:
            AssignmentConfig.load(path)
        assert err.value.path == path


# --- adjustments, one account --------------------------------------------------------------------------------------

def test_overrides_bonuses_and_lateness_make_one_adjusted_total():
    raw = result("alice", (6.0, 0.0))
    assert raw.questions[1].pending and not raw.final and raw.total == 6  # the manual question needs grading
    adjustments = [Adjustment(1, "alice", "explain", 1.0, "first look", "ta", "t"),
                   Adjustment(2, "alice", "explain", 1.5, "second look", "ta", "t"),
                   Adjustment(3, "alice", "", 0.5, "found a typo in the task", "ta", "t"),
                   Adjustment(4, "bob", "", 9.0, "not alice's", "ta", "t")]
    late = lateness(POLICY, Timing("2026-03-02T12:00:00+01:00"), raw.max_total)
    done = adjust(raw, adjustments, late)
    assert done.questions[1].points == 1.5 and not done.questions[1].pending and done.final  # the latest override
    assert late["penalty"] == 1.0 and done.total == 6 + 1.5 + 0.5 - 1.0 and done.raw_total == 6
    assert done.grade == done.total
    assert [a["applied"] for a in done.adjustments] == [False, True, True]
    row = gradebook_row(done, AssignmentConfig("c", "C", "c.ipynb", ()))
    assert (row["total"], row["raw_total"], row["late"], row["penalty"]) == (7.0, 6.0, "12.02", 1.0)
    assert adjust(raw) is raw


def test_an_override_resolves_a_check_the_grader_could_not_run():
    broken = Outcome("conv2d_small", "conv2d", True, 1.0, 0.0, "probe failed", status="error")
    raw = SubmissionResult("alice", "ok", [QuestionScore("conv2d", 0.0, 8.0, [broken])])
    assert not raw.final and raw.grade is None
    looked = adjust(raw, [Adjustment(1, "alice", "conv2d", 6.0, "ran it by hand", "ta", "t")])
    assert looked.final and looked.grade == 6.0 and looked.needs_review  # the flag stays for the record


def old_records(out: Path, results: list[SubmissionResult]) -> None:
    """Records as schema 2 wrote them: a results table only."""
    out.mkdir(parents=True)
    db = sqlite3.connect(out / RECORDS)
    db.execute("CREATE TABLE results (submission TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL, "
               "graded_at REAL NOT NULL, result TEXT NOT NULL)")
    for r in results:
        data = json.loads(json.dumps(r, default=vars))
        for q in data["questions"]:
            q.pop("manual"), q.pop("overridden")
        for key in ("adjustments", "lateness", "graded_total"):
            data.pop(key)
        db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?)", (r.submission, r.path, "d", 0.0, json.dumps(data)))
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()


def test_adjustments_are_recorded_with_who_and_when_undone_and_older_records_still_read(tmp_path):
    out = tmp_path / "out"
    old_records(out, [result("alice", (6.0, 0.0), manual=False)])
    records = Records(out)
    assert records.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert records.results()[0].total == 6  # a schema-2 result, read
    bonus = records.add_adjustment("alice", "", 2.0, "bonus task")
    assert bonus.who and bonus.at.endswith("+00:00")
    assert records.results()[0].total == 8 and records.results(adjusted=False)[0].total == 6
    records.undo_adjustment(bonus.id)
    assert records.results()[0].total == 6 and records.adjustments() == []
    assert records.db.execute("SELECT undone_by FROM adjustments").fetchone()[0]  # kept, marked undone
    with pytest.raises(ConfigError, match="no adjustment 99"):
        records.undo_adjustment(99)
    records.close()


# --- manual questions in the master notebook ---------------------------------------------------------------------

def raw(text: str):
    return nbformat.v4.new_raw_cell(text)


def written_master(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [raw("# BEGIN QUESTION\nname: explain"), nbformat.v4.new_markdown_cell("Why no kernel flip?"),
                raw("# BEGIN SOLUTION"), nbformat.v4.new_markdown_cell("MODEL: cross-correlation is what conv2d does"),
                raw("# END SOLUTION"), raw("# RUBRIC\n2: says cross-correlation\n1: says flip, no reason"),
                raw("# END QUESTION"),
                raw("# BEGIN QUESTION\nname: conv2d"), nbformat.v4.new_code_cell("x = 1 # SOLUTION"),
                raw("# END QUESTION")]
    nbformat.write(nb, path)
    return path


def test_written_answers_are_stripped_and_the_rubric_kept_for_graders_only(tmp_path):
    master = Master.read(written_master(tmp_path / "m.ipynb"))
    student, solution = master.student(), master.solution()
    student_text = json.dumps(student)
    assert "MODEL" not in student_text and "RUBRIC" not in student_text and "says flip" not in student_text
    assert tagged_cells(student, "answer:explain") == [ANSWER_PROMPT]
    sources = [c.source for c in student.cells]
    assert 'grader.check("explain")' not in sources and 'grader.check("conv2d")' in sources
    assert tagged_cells(solution, "answer:explain") == ["MODEL: cross-correlation is what conv2d does"]
    assert "2: says cross-correlation" in tagged_cells(solution, "rubric:explain")[0]


COPIED = """def conv2d_single(image, kernel):
    kh, kw = kernel.shape
    out = torch.zeros(image.shape[0] - kh + 1, image.shape[1] - kw + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (image[i:i + kh, j:j + kw] * kernel).sum()
    return out
"""


def answered(path: Path, answer: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell(answer)
    cell.metadata["tags"] = ["answer:explain"]
    nb.cells = [nbformat.v4.new_code_cell(COPIED), cell]
    nbformat.write(nb, path)
    return path


def course_out(tmp_path: Path, anonymize=False) -> Path:
    """A --out whose records hold alice and bob, each with a written answer in their notebook."""
    out = tmp_path / "out"
    records = Records(out)
    for name, answer in (("alice_101", "Because conv2d is a cross-correlation."), ("bob_102", "It flips.")):
        records.add(result(name, path=str(answered(tmp_path / f"{name}_1_x.ipynb", answer))), "d")
    records.set_setting("rubric:explain", "# RUBRIC\n2: says cross-correlation")
    records.close()
    config = AssignmentConfig("convolution", "Convolution", "c.ipynb",
                              (Question("conv2d", 8.0), Question("explain", 2.0, "manual")))
    record_config(out, config)
    record_course(out, config, [], anonymize=anonymize)
    return out


def test_a_manual_question_graded_through_a_sheet(tmp_path, capsys):
    out = course_out(tmp_path)
    assert main(["sheet", str(out), "--question", "explain"]) == 0
    sheet = out / "sheets" / "explain.csv"
    rows = list(csv.DictReader(sheet.open()))
    assert [(r["submission"], r["points"], r["answer"]) for r in rows] == [
        ("alice_101", "", "Because conv2d is a cross-correlation."), ("bob_102", "", "It flips.")]
    page = (out / "sheets" / "explain.html").read_text()
    assert "2: says cross-correlation" in page and "It flips." in page
    rows[0].update(points="2", reason="names cross-correlation")
    rows[1].update(points="0.5")
    with sheet.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["adjust", str(out), "--from", str(sheet)]) == 0
    assert "recorded 2 score(s)" in capsys.readouterr().out
    gradebook = {r["submission"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert gradebook["alice_101"]["explain"] == "2.0" and gradebook["alice_101"]["total"] == "10.0"
    assert gradebook["bob_102"]["total"] == "8.5" and gradebook["bob_102"]["review"] == ""
    feedback = (out / "feedback" / "alice_101.txt").read_text()
    assert "explain set to 2 points by your instructor: names cross-correlation" in feedback
    assert "graded from the grading sheet" in (out / "feedback" / "bob_102.html").read_text()
    assert json.loads((out / "results" / "alice_101.json").read_text())["score"] == 10
    assert import_sheet(out, sheet) == []  # the same sheet again records nothing new
    sheet.write_text("submission,question,points\nalice_101,explain,3\n")
    with pytest.raises(ConfigError, match="outside 0 to 2"):
        import_sheet(out, sheet)


def test_adjust_works_on_records_graded_without_the_command_line(tmp_path):
    out = tmp_path / "out"
    records = Records(out)
    records.add(result("alice_101"), "d")
    records.close()
    assert main(["adjust", str(out), "alice_101", "explain", "2", "--reason", "read by hand"]) == 0
    row = next(csv.DictReader((out / "gradebook.csv").open()))
    assert (row["conv2d"], row["explain"], row["total"]) == ("8.0", "2.0", "10.0")


def test_adjust_override_bonus_undo_and_refusals(tmp_path, capsys):
    out = course_out(tmp_path)
    assert main(["adjust", str(out), "bob_102", "4", "--reason", "extra credit"]) == 0
    assert main(["adjust", str(out), "bob_102", "conv2d", "5", "--reason", "partial credit by hand"]) == 0
    gradebook = {r["submission"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert gradebook["bob_102"]["total"] == "9.0" and gradebook["bob_102"]["raw_total"] == "8.0"
    assert "+4 points from your instructor: extra credit" in (out / "feedback" / "bob_102.txt").read_text()
    assert main(["adjust", str(out), "--undo", "1"]) == 0
    gradebook = {r["submission"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert gradebook["bob_102"]["total"] == "5.0"
    capsys.readouterr()
    assert main(["adjust", str(out), "--list"]) == 0
    listing = capsys.readouterr().out
    assert "#2 bob_102 conv2d 5" in listing and "#1" not in listing
    for argv, words in ((["bob_102", "9"], "needs --reason"), (["carol", "1", "--reason", "x"], "no submission"),
                        (["bob_102", "conv2d", "9", "--reason", "x"], "outside 0 to 8"),
                        (["bob_102", "nope", "1", "--reason", "x"], "no question 'nope'")):
        assert main(["adjust", str(out), *argv]) == 2
        assert words in " ".join(capsys.readouterr().out.split())


# --- anonymity ----------------------------------------------------------------------------------------------------

def test_anonymised_report_and_instructor_pages_hold_no_real_name(tmp_path):
    out = course_out(tmp_path, anonymize=True)
    (out / "instructor").mkdir()
    for name in ("alice_101", "bob_102"):
        (out / "instructor" / f"{name}.html").write_text(name)  # as the batch wrote them
    write_report(out, title="convolution", threshold=0.0)
    records = Records(out)
    key = records.setting("pseudonym_key")
    records.close()
    assert key  # the key stays in the records
    first = sorted(p.name for p in (out / "instructor").iterdir())
    assert len(first) == 4 and all(p.startswith("student-") for p in first)
    pages = [out / "report.html", *(out / "instructor").iterdir(), *(out / "similarity").glob("*.html")]
    assert len(pages) >= 6  # the report, four instructor pages, a similarity page
    for page in pages:
        text = page.read_text()
        assert "alice" not in text and "bob" not in text, page
    write_report(out, title="convolution", threshold=0.0)
    assert sorted(p.name for p in (out / "instructor").iterdir()) == first  # stable pseudonyms
    alias = first[0].rsplit(".", 1)[0]
    assert main(["adjust", str(out), alias, "1", "--reason", "graded blind"]) == 0  # graders adjust by pseudonym
    records = Records(out)
    whose = [n for n in ("alice_101", "bob_102") if pseudonym(key, n) == alias]
    assert [a.submission for a in records.adjustments()] == whose and len(whose) == 1  # recorded under the real name
    records.close()


# --- feedback for LMSs --------------------------------------------------------------------------------------------

def test_feedback_zips_for_canvas_moodle_and_plain(tmp_path):
    out = course_out(tmp_path)
    canvas = export_feedback(out, "canvas")
    names = zipfile.ZipFile(canvas.output).namelist()
    assert sorted(names) == ["alice_101_1_feedback.html", "bob_102_1_feedback.html"]
    plain = zipfile.ZipFile(export_feedback(out, "zip").output)
    assert "bob_102/feedback.txt" in plain.namelist()
    assert "explain" in plain.read("bob_102/feedback.txt").decode()
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,Full name,Identifier\nalice_101,Alice Liddell,Participant 7\n")
    moodle = export_feedback(out, "moodle", roster=roster)
    assert zipfile.ZipFile(moodle.output).namelist() == ["Alice Liddell_7_assignsubmission_file_/feedback.html"]
    assert list(moodle.skipped) == ["bob_102"]  # no participant number: said, not guessed
    with pytest.raises(TorchgradeError, match=r"no moodle feedback written: none of the 2 graded submission\(s\) "
                                              r"could be placed \(no Moodle participant number.*; the "
                                              r"feedback-moodle.zip of an earlier export was removed"):
        export_feedback(out, "moodle")  # no roster: nothing placed, and no zip to upload by mistake
    assert not moodle.output.exists()
    with pytest.raises(UnknownExtension, match="unknown feedback 'blackboard'; known: moodle, canvas, zip"):
        export_feedback(out, "blackboard")


# --- end to end: Canvas's download and export, a late policy with an extension, a written question ---------------

CANVAS_EXPORT = """Student,ID,SIS User ID,SIS Login ID,Section,Convolution from scratch (4711),Current Score
    Points Possible,,,,,23.00,
"Liddell, Alice",101,S101,aliddell,Section A,,
"Builder, Bob",102,S102,bbuilder,Section B,,
"Danvers, Carol",103,S103,cdanvers,Section A,,
"Nobody, Nora",104,S104,nnobody,Section B,,
"Student, Test",999,,,Section A,,
"""


def torchgrade(*args):
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return " ".join(proc.stdout.split())


def course_assignment(root: Path) -> Path:
    """The convolution assignment with a written question (rubric and model answer) and a late policy."""
    source = root / "convolution"
    shutil.copytree(ASSIGNMENTS / "convolution", source, ignore=shutil.ignore_patterns("examples"))
    toml = (source / "assignment.toml").read_text().replace(
        'reference = "../../reference/convolution.py"',
        f'reference = "{(ASSIGNMENTS.parent / "reference" / "convolution.py").as_posix()}"')
    toml += ('\n[late]\ndeadline = "2026-03-01T23:59:00+01:00"\npenalty_per_day = 0.1\ncap = 0.5\n'
             'grace_minutes = 10\n\n[[questions]]\nid = "explain"\npoints = 2\nkind = "manual"\n')
    (source / "assignment.toml").write_text(toml)
    nb = nbformat.read(source / "convolution.ipynb", as_version=4)
    nb.cells += [raw("# BEGIN QUESTION\nname: explain"),
                 nbformat.v4.new_markdown_cell("Why does `conv2d` not flip the kernel?"), raw("# BEGIN SOLUTION"),
                 nbformat.v4.new_markdown_cell("It computes a cross-correlation, as PyTorch's conv2d does."),
                 raw("# END SOLUTION"), raw("# RUBRIC\n2: names cross-correlation\n1: says it does not flip"),
                 raw("# END QUESTION")]
    nbformat.write(nb, source / "convolution.ipynb")
    return source


def with_answer(base: Path, path: Path, answer: str) -> Path:
    nb = nbformat.read(base, as_version=4)
    for cell in nb.cells:
        if "answer:explain" in cell.get("metadata", {}).get("tags", []):
            cell.source = answer
            break
    else:
        nb.cells.append(nbformat.v4.new_markdown_cell(answer, metadata={"tags": ["answer:explain"]}))
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_a_course_from_canvas_download_to_canvas_gradebook(tmp_path):
    dist = tmp_path / "dist"
    built = torchgrade("assign", course_assignment(tmp_path), "--out", dist)
    assert "solution: 21/21" in built and "written answers, for a person to grade: explain (2 points)" in built
    student = nbformat.read(dist / "student" / "convolution.ipynb", as_version=4)
    assert "cross-correlation, as PyTorch" not in json.dumps(student)  # the model answer stripped
    download = tmp_path / "submissions"  # Canvas's bulk download: name_[LATE_]userid_subid_file
    download.mkdir()
    examples = ASSIGNMENTS / "convolution" / "examples"
    with_answer(dist / "autograder" / "solution.ipynb", download / "liddellalice_101_5550001_convolution.ipynb",
                "Cross-correlation: conv2d never flips.")
    with_answer(examples / "flipped_kernel.ipynb", download / "builderbob_LATE_102_5550002_convolution.ipynb",
                "It flips the kernel.")
    with_answer(examples / "no_sqrt.ipynb", download / "danverscarol_103_5550003_convolution-1.ipynb",
                "No idea.")
    times = tmp_path / "times.csv"
    times.write_text("submission,submitted_at\n103,2026-03-03T10:00:00+01:00\n101,2026-03-01T20:00:00Z\n")
    extensions = tmp_path / "extensions.csv"  # Canvas's export with an extension column added for Carol
    extensions.write_text(CANVAS_EXPORT.replace("Current Score", "Extension").replace(
        '"Danvers, Carol",103,S103,cdanvers,Section A,,', '"Danvers, Carol",103,S103,cdanvers,Section A,,24'))
    out = tmp_path / "grades"
    torchgrade("grade", dist / "autograder", download, "--out", out, "--jobs", "2", "--submitted-at", times,
               "--extensions", extensions)
    rows = {r["submission"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert set(rows) == {"liddellalice_101", "builderbob_102", "danverscarol_103"}
    alice, bob, carol = rows["liddellalice_101"], rows["builderbob_102"], rows["danverscarol_103"]
    assert alice["explain"] == "" and "needs-grading:explain" in alice["review"]
    assert (alice["total"], alice["late"]) == ("21.0", "")  # on time
    assert (bob["raw_total"], bob["late"], bob["penalty"], bob["total"]) == ("8.0", "unknown", "2.3", "5.7")
    assert "late-unknown" in bob["review"]  # only Canvas's LATE_ marker: one day, for review
    assert carol["late"] == "10.02" and carol["penalty"] == "2.3"  # 34 hours late, 24 of them extended: one day
    assert carol["raw_total"] == "18.0"

    assert main(["adjust", str(out), "builderbob_102", "1", "--reason", "the task's typo in conv2d"]) == 0
    assert main(["sheet", str(out), "--question", "explain"]) == 0
    sheet = list(csv.DictReader((out / "sheets" / "explain.csv").open()))
    assert {r["submission"]: r["answer"] for r in sheet}["liddellalice_101"] == "Cross-correlation: conv2d never flips."
    for r in sheet:
        r["points"] = {"liddellalice_101": "2", "builderbob_102": "1", "danverscarol_103": "0"}[r["submission"]]
    with (out / "sheets" / "explain.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(sheet[0]))
        writer.writeheader()
        writer.writerows(sheet)
    assert main(["adjust", str(out), "--from", str(out / "sheets" / "explain.csv")]) == 0

    export = tmp_path / "canvas-export.csv"
    export.write_text(CANVAS_EXPORT)
    assert main(["gradebook", str(out), "--roster", str(export), "--format", "canvas", "--output",
                 str(tmp_path / "import.csv"), "--title", "Convolution from scratch", "--assignment-id", "4711"]) == 0
    table = list(csv.reader((tmp_path / "import.csv").open()))
    assert table[1][0] == "    Points Possible" and sum(r[0].strip() == "Points Possible" for r in table) == 1
    assert table[2:] == [["Liddell, Alice", "101", "S101", "aliddell", "Section A", "23"],
                         ["Builder, Bob", "102", "S102", "bbuilder", "Section B", "7.7"],  # 8 + 1 + 1 - 2.3
                         ["Danvers, Carol", "103", "S103", "cdanvers", "Section A", "15.7"],  # 18 + 0 - 2.3
                         ["Nobody, Nora", "104", "S104", "nnobody", "Section B", ""]]  # no test student
    result = json.loads((out / "results" / "builderbob_102.json").read_text())
    assert result["score"] == 7.7 and result["extra_data"]["raw_total"] == 8
    assert "the task's typo in conv2d" in html.unescape((out / "feedback" / "builderbob_102.html").read_text())

    again = torchgrade("grade", dist / "autograder", download / "builderbob_LATE_102_5550002_convolution.ipynb",
                       "--out", out, "--force", "--name-from", "pattern")
    assert "keeping 2 adjustment(s)" in again and "the task's typo in conv2d" in again
    assert {r["submission"]: r for r in csv.DictReader((out / "gradebook.csv").open())}["builderbob_102"][
        "total"] == "7.7"
    assert main(["report", str(out), "--anonymize"]) == 0  # graders read pseudonyms from now on
    for page in [out / "report.html", *(out / "instructor").iterdir(), *(out / "similarity").glob("*")]:
        text = page.read_text()
        assert not any(n in text or n in page.name for n in ("liddellalice", "builderbob", "danverscarol")), page
    assert main(["sheet", str(out), "--question", "explain"]) == 0
    assert all(r["submission"].startswith("student-") for r in csv.DictReader((out / "sheets" / "explain.csv").open()))
    assert main(["gradebook", str(out), "--roster", str(export), "--format", "canvas", "--output",
                 str(tmp_path / "again.csv")]) == 0
    assert list(csv.reader((tmp_path / "again.csv").open()))[2:] == table[2:]  # real ids
    feedback = zipfile.ZipFile(export_feedback(out, "canvas").output).namelist()
    assert sorted(feedback) == ["builderbob_LATE_102_5550002_feedback.html", "danverscarol_103_5550003_feedback.html",
                                "liddellalice_101_5550001_feedback.html"]


GRADESCOPE_METADATA = """submission_1001:
  :submitters:
  - :name: Alice Liddell
    :sid: '101'
    :email: alice@example.edu
  :created_at: 2026-03-02 10:30:00.123456000 +01:00
  :score: 0.0
submission_1002:
  :submitters:
  - :name: Bob Builder
    :sid: '102'
    :email: bob@example.edu
  :created_at: 2026-03-01 12:00:00.000000000 -08:00
  :score: 0.0
"""


def test_times_given_for_an_assignment_without_a_late_policy_are_said_to_change_nothing(tmp_path):
    """Found by an instructor's trial: `[late]` added to assignment.toml but the bundle not built again, then
    `grade ... --submitted-at times.csv`: the times changed nothing, and nothing said so. They are still recorded:
    grading the assignment once it has a policy applies them."""
    from autograder.report.course import unused_times

    times = tmp_path / "times.csv"
    times.write_text("submission,submitted_at\nbob,2026-03-02T09:00:00Z\n")
    config = AssignmentConfig("c", "C", "c.ipynb", ())
    said = unused_times(config, times, None, built=True)
    assert said.startswith("--submitted-at given, but this assignment has no late policy: no penalty applies")
    assert "build it again (torchgrade assign)" in said
    assert "build it again" not in unused_times(config, None, times, built=False)  # a source folder is built anyway
    assert unused_times(config, None, None, built=True) == ""
    assert unused_times(replace(config, late=POLICY), times, times, built=True) == ""
    record_course(tmp_path / "out", config, [("bob", tmp_path / "bob.ipynb")], submitted_at=times)
    records = Records(tmp_path / "out")
    assert records.timing("bob").submitted_at == "2026-03-02T09:00:00+00:00"  # kept for a regrade with a policy
    records.close()

def test_submission_times_from_gradescope_metadata_a_csv_and_canvas_marker(tmp_path):
    export = tmp_path / "gradescope-export"
    export.mkdir()
    (export / "submission_metadata.yml").write_text(GRADESCOPE_METADATA)
    out = tmp_path / "out"
    config = AssignmentConfig("c", "C", "c.ipynb", (), late=POLICY)
    named = [("submission_1001", export / "submission_1001" / "a.ipynb"),
             ("submission_1002", export / "submission_1002" / "b.ipynb"),
             ("carol_103", tmp_path / "carol_LATE_103_77_c.ipynb")]
    record_course(out, config, named, folders=[export])
    records = Records(out)
    assert parse(records.timing("submission_1001").submitted_at) == parse("2026-03-02T10:30:00.123456+01:00")
    assert records.timing("carol_103") == Timing("", True, 0.0)
    records.close()
    times = tmp_path / "times.csv"
    times.write_text("submission,submitted_at\n103,2026-03-02T09:00:00Z\n")
    record_course(out, config, named, folders=[export], submitted_at=times)  # a CSV is preferred to the marker
    record_course(out, config, named[2:])  # a regrade without times keeps the known one
    records = Records(out)
    assert records.timing("carol_103").submitted_at == "2026-03-02T09:00:00+00:00"
    records.add(result("submission_1001", (8.0, 2.0), manual=False), "d")
    late = records.results()[0].lateness
    assert late["periods"] == 1 and late["penalty"] == 1.0  # 10.5 hours late: one started day, 10% of 10
    records.close()
    times.write_text("submission,submitted_at\ncarol_103,2026-03-02 09:00\n")
    with pytest.raises(ConfigError, match="line 2: .*no time zone") as err:
        record_course(out, config, named, submitted_at=times)
    assert err.value.path == times


def parse(text: str):
    from autograder.adjustments import parse_time

    return parse_time(text)


def test_the_terminal_gradebook_shows_lateness_and_raw_totals_only_where_they_say_something():
    from io import StringIO

    from rich.console import Console

    from autograder.report.gradebook import gradebook_frame
    from autograder.report.terminal import print_gradebook

    config = AssignmentConfig("c", "C", "c.ipynb", (Question("conv2d", 8.0),))
    plain = [SubmissionResult("alice", "ok", [QuestionScore("conv2d", 8.0, 8.0)])]
    late = adjust(plain[0], [], lateness(POLICY, Timing("2026-03-02T12:00:00+01:00"), 8.0))

    def shown(results) -> str:
        text = StringIO()
        print_gradebook(gradebook_frame(results, config), Console(file=text, width=150))
        return text.getvalue()

    assert "raw_total" not in shown(plain) and "penalty" not in shown(plain) and "conv2d" in shown(plain)
    table = shown([late])
    assert "raw_total" in table and "late" in table and "0.8" in table and "7.2" in table


def test_the_gradebook_says_a_written_answer_awaits_its_grader(tmp_path, capsys):
    """Found by an instructor's trial: a written answer not graded yet was listed as "pending: explain (checks the
    grader could not run)", with the advice to grade again, which changes nothing."""
    out = course_out(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,name\nalice_101,Alice\nbob_102,Bob\n")
    assert main(["gradebook", str(out), "--roster", str(roster), "--format", "csv",
                 "--output", str(tmp_path / "g.csv")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "alice_101: written answers to grade: explain (torchgrade sheet OUT --question Q)" in text, text
    assert "checks the grader could not run" not in text


def test_the_report_leaves_pending_written_answers_out_of_their_histogram(tmp_path, monkeypatch):
    """Found by an instructor's trial: a written answer not graded yet counted as 0 in its question's histogram and
    mean, and nothing said the totals were provisional."""
    import autograder.report.instructor as instructor

    out = course_out(tmp_path)  # alice and bob, both with `explain` pending
    assert main(["adjust", str(out), "alice_101", "explain", "2", "--reason", "names cross-correlation"]) == 0
    drawn = []
    monkeypatch.setattr(instructor, "histogram_png", lambda scores, points, title: drawn.append((title, scores)) or "")
    write_report(out)
    assert drawn[0][0] == "total (out of 10; 1 with points pending)"
    assert ("explain (out of 2; 1 pending)", [2.0]) in drawn  # bob's is not a zero


def filled_sheet(out: Path, points: dict[str, str]) -> Path:
    """The grading sheet of `explain`, its rows of the submissions in `points` given those points, the others blank."""
    assert main(["sheet", str(out), "--question", "explain"]) == 0
    sheet = out / "sheets" / "explain.csv"
    rows = list(csv.DictReader(sheet.open()))
    for row in rows:
        row["points"] = points.get(row["submission"], "")
    with sheet.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return sheet

def test_a_sheet_with_rows_left_blank_says_what_is_still_to_grade(tmp_path, capsys):
    out = course_out(tmp_path)
    sheet = filled_sheet(out, {"alice_101": "2"})  # bob's row left blank
    capsys.readouterr()
    assert main(["adjust", str(out), "--from", str(sheet)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "recorded 1 score(s)" in text and "still to grade: 1 submission(s): bob_102 (explain)" in text, text


def test_the_gradebook_names_checks_that_could_not_run_even_where_their_question_is_not_pending(tmp_path, capsys):
    """A check that errored beside one that ran: its question is not pending, yet the grade is not final. The
    listing gave an empty reason ("alice: ")."""
    out = tmp_path / "out"
    records = Records(out)
    ran = Outcome("conv2d_small", "conv2d", True, 1.0, 1.0, "ok", status="passed")
    errored = Outcome("conv2d_big", "conv2d", True, 1.0, 0.0, "the grader could not run this check", status="error",
                      phase="probe")
    records.add(SubmissionResult("alice", "ok", [QuestionScore("conv2d", 4.0, 8.0, [ran, errored])]), "d")
    records.close()
    record_config(out, AssignmentConfig("c", "C", "c.ipynb", (Question("conv2d", 8.0),)))
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,name\nalice,Alice\n")
    assert main(["gradebook", str(out), "--roster", str(roster), "--format", "csv",
                 "--output", str(tmp_path / "g.csv")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "alice: checks the grader could not run in conv2d (look, then set the points with torchgrade adjust)" \
        in text, text


def test_adjust_speaks_of_pseudonyms_under_anonymize(tmp_path, capsys):
    """Graders of an anonymised course read pseudonyms everywhere: adjust's confirmations, its list and the
    sheet import's "still to grade" printed real names."""
    out = course_out(tmp_path, anonymize=True)
    records = Records(out)
    alias = pseudonyms(records, ["alice_101", "bob_102"])
    records.close()
    sheet = filled_sheet(out, {alias["alice_101"]: "2"})
    capsys.readouterr()
    assert main(["adjust", str(out), "--from", str(sheet)]) == 0
    assert main(["adjust", str(out), alias["bob_102"], "1", "--reason", "bonus"]) == 0
    assert main(["adjust", str(out), "--list"]) == 0
    text = capsys.readouterr().out
    assert f"still to grade: 1 submission(s): {alias['bob_102']} (explain)" in " ".join(text.split())
    assert alias["bob_102"] in text and "bob_102" not in text and "alice_101" not in text, text
