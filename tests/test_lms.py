"""`torchgrade gradebook`: recorded grades matched to a roster, in Canvas's, Moodle's and a plain CSV (no kernels)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from autograder.cli.parser import main
from autograder.errors import ConfigError
from autograder.report.lms import POINTS_POSSIBLE, export_lms, read_roster
from autograder.report.records import Records
from autograder.outcomes import QuestionScore, SubmissionResult

ROSTER = """submission,name,id,sis_user_id,sis_login_id,section,email
alice,"Liddell, Alice",101,S101,aliddell,A,alice@example.edu
bob,"Builder, Bob",102,S102,bbuilder,B,bob@example.edu
carol,"Danvers, Carol",103,S103,cdanvers,A,carol@example.edu
,"Nobody, Nora",104,S104,nnobody,B,nora@example.edu
erin,"Error, Erin",105,S105,eerror,A,erin@example.edu
"""


def result(name: str, points: tuple[float, float], status: str = "ok", message: str = "",
           flags: list[dict] | None = None) -> SubmissionResult:
    questions = [QuestionScore("conv2d", points[0], 8.0), QuestionScore("sobel", points[1], 4.0)]
    return SubmissionResult(name, status, questions, message, path=f"/submissions/{name}.ipynb", flags=flags or [])


@pytest.fixture
def out(tmp_path) -> Path:
    """A `--out` folder whose record holds alice, bob (flagged), erin (the grader failed) and zed (no roster row)."""
    out = tmp_path / "convolution"
    records = Records(out)
    for r in (result("alice", (8, 4)), result("bob", (3.5, 1.25), flags=[{"kind": "frame-walk", "origin": "source",
                                                                         "detail": "x"}]),
              result("erin", (0, 0), "error", "the grader failed: boom"), result("zed", (2, 0), "timeout")):
        records.add(r, "digest")
    records.close()
    (out / "gradebook.csv").write_text("submission,total\nalice,0\nmallory,12\n")  # never read: rows come from records
    return out


@pytest.fixture
def roster(tmp_path) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER)
    return path


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_header_points_possible_and_grades(out, roster, tmp_path):
    report = export_lms(out, roster, "canvas", tmp_path / "canvas.csv", "Convolution from scratch", "4711")
    table = rows(report.output)
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Convolution from scratch (4711)"]
    assert table[1][0].strip() == "Points Possible" and table[1][0] == POINTS_POSSIBLE and table[1][1:] == [
        "", "", "", "", "12"]
    assert table[2:] == [
        ["Liddell, Alice", "101", "S101", "aliddell", "A", "12"],
        ["Builder, Bob", "102", "S102", "bbuilder", "B", "4.75"],
        ["Danvers, Carol", "103", "S103", "cdanvers", "A", ""],  # no graded submission: empty, not zero
        ["Nobody, Nora", "104", "S104", "nnobody", "B", ""],  # no submission at all
        ["Error, Erin", "105", "S105", "eerror", "A", ""],  # the grader failed: never a zero she did not earn
    ]
    assert [s.name for s in report.matched.missing] == ["Danvers, Carol", "Nobody, Nora"]
    assert [r.submission for r in report.matched.ungraded] == ["erin"]
    assert [r.submission for r in report.matched.unmatched] == ["zed"]  # in the record, claimed by no student
    assert report.side_file == tmp_path / "canvas.unmatched.csv"
    assert rows(report.side_file) == [["submission", "total", "max_total", "status", "flags"],
                                      ["zed", "2", "12", "timeout", ""]]


def test_a_side_file_no_longer_true_is_removed(out, roster, tmp_path):
    report = export_lms(out, roster, "csv", tmp_path / "grades.csv")
    assert report.side_file.exists()
    roster.write_text(ROSTER + "zed,Zed,106,S106,zz,A,zed@example.edu\n")
    report = export_lms(out, roster, "csv", tmp_path / "grades.csv")
    assert report.side_file is None and not (tmp_path / "grades.unmatched.csv").exists()


def test_canvas_without_an_assignment_id_and_default_title_and_file(out, roster):
    report = export_lms(out, roster, "canvas")
    assert report.output == out / "gradebook-canvas.csv"
    assert rows(report.output)[0][-1] == "convolution"  # the out folder's name: Canvas makes a new assignment


def test_moodle_identity_and_grade_columns(out, roster, tmp_path):
    report = export_lms(out, roster, "moodle", tmp_path / "moodle.csv", "Convolution")
    table = rows(report.output)
    assert table[0] == ["Email address", "ID number", "Convolution"]
    assert table[1:] == [["alice@example.edu", "101", "12"], ["bob@example.edu", "102", "4.75"],
                         ["carol@example.edu", "103", ""], ["nora@example.edu", "104", ""],
                         ["erin@example.edu", "105", ""]]

    only_email = tmp_path / "emails.csv"
    only_email.write_text("submission,email\nalice,alice@example.edu\n")
    report = export_lms(out, only_email, "moodle", tmp_path / "moodle2.csv", "Convolution")
    assert rows(report.output) == [["Email address", "Convolution"], ["alice@example.edu", "12"]]
    assert sorted(r.submission for r in report.matched.unmatched) == ["bob", "erin", "zed"]


def test_csv_lists_every_student_and_every_submission(out, roster, tmp_path):
    table = rows(export_lms(out, roster, "csv", tmp_path / "grades.csv").output)
    assert table[0] == ["submission", "name", "id", "sis_user_id", "sis_login_id", "section", "email", "total",
                        "max_total", "status", "flags"]
    by_submission = {(r[0], r[1]): r for r in table[1:]}
    assert by_submission[("alice", "Liddell, Alice")][7:] == ["12", "12", "ok", ""]
    assert by_submission[("bob", "Builder, Bob")][7:] == ["4.75", "12", "ok", "frame-walk"]
    assert by_submission[("carol", "Danvers, Carol")][7:] == ["", "12", "missing", ""]
    assert by_submission[("", "Nobody, Nora")][7:] == ["", "12", "missing", ""]
    assert by_submission[("erin", "Error, Erin")][7:] == ["", "12", "error", ""]
    assert by_submission[("zed", "")][7:] == ["2", "12", "timeout", ""]  # no student, still listed
    assert len(table) == 7


def test_roster_headers_as_canvas_exports_them(out, tmp_path):
    roster = tmp_path / "canvas-export.csv"
    roster.write_text("\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Submission,Other\n"
                      "\"Liddell, Alice\",101,S101,aliddell,A,alice,ignored\n")
    table = rows(export_lms(out, roster, "canvas", tmp_path / "c.csv", "T").output)
    assert table[2] == ["Liddell, Alice", "101", "S101", "aliddell", "A", "12"]


@pytest.mark.parametrize("text, fmt, words", [
    ("name,id\nAlice,101\n", "csv", "no `submission` column"),
    ("", "csv", "empty"),
    ("submission,name\nalice,Alice\n", "canvas", "`id` or `sis_user_id` or `sis_login_id`"),
    ("submission,name,sis_login_id\nalice,Alice,a\n", "moodle", "`email` or `id`"),
    ("submission,id\nalice,1\nalice,2\n", "csv", "several roster rows claim the same submission: alice"),
])
def test_rosters_that_cannot_be_used_are_refused(out, tmp_path, text, fmt, words):
    roster = tmp_path / "roster.csv"
    roster.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as err:
        export_lms(out, roster, fmt, tmp_path / "x.csv")
    assert err.value.path == roster
    assert not (tmp_path / "x.csv").exists()


def test_an_out_folder_without_records_is_refused(roster, tmp_path):
    with pytest.raises(ConfigError, match="no grades recorded"):
        export_lms(tmp_path / "nothing", roster, "csv")
    assert not (tmp_path / "nothing").exists()  # nothing created by looking


def test_unknown_roster_columns_are_ignored_and_blank_rows_skipped(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("Submission , E-mail Address,notes\nalice,a@x.org,hi\n,,\n")
    roster = read_roster(path)
    assert roster.columns == {"submission", "email"} and len(roster.students) == 1
    assert roster.students[0].email == "a@x.org"


def test_the_command_reports_mismatches(out, roster, tmp_path, capsys):
    output = tmp_path / "canvas.csv"
    code = main(["gradebook", str(out), "--roster", str(roster), "--format", "canvas", "--output", str(output),
                 "--title", "Convolution", "--assignment-id", "4711"])
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0 and output.exists()
    assert "2 of 5 roster student(s) graded" in text  # erin's row is empty: the grader failed on it
    assert "2 student(s) without a graded submission" in text and "Danvers, Carol, 103" in text
    assert "(roster submission 'carol')" in text and "Nobody, Nora, 104" in text
    assert "1 submission(s) without a student in the roster" in text and "zed: 2 / 12, timeout" in text
    assert "canvas.unmatched.csv" in text
    assert "1 submission(s) without a final grade" in text and "erin: the grader failed: boom" in text


# --- rosters as the LMSs export them ---------------------------------------------------------------------------

CANVAS_EXPORT = """Student,ID,SIS User ID,SIS Login ID,Integration ID,Section,Convolution (4711),Current Score
    Points Possible,,,,,,12.00,
"Liddell, Alice",101,S101,aliddell,,Section A,,
"Builder, Bob",102,S102,bbuilder,,Section B,,
"Nobody, Nora",104,S104,nnobody,,Section B,,
"Student, Test",999,,,,Section A,,
"""


@pytest.fixture
def canvas_out(tmp_path) -> Path:
    """Records of submissions named as `grade` names Canvas's bulk download: `<name>_<userid>`."""
    out = tmp_path / "canvas-grades"
    records = Records(out)
    for r in (result("liddellalice_101", (8, 4)), result("builderbob_102", (3.5, 1.25)),
              result("strangerzed_555", (1, 1))):
        records.add(r, "digest")
    records.close()
    return out


def test_canvas_export_is_read_as_it_comes_matched_by_the_user_id_in_download_names(canvas_out, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(CANVAS_EXPORT)
    roster = read_roster(export)
    assert roster.shape == "canvas" and "submission" not in roster.columns
    assert [s.name for s in roster.students] == ["Liddell, Alice", "Builder, Bob", "Nobody, Nora"]  # no points row,
    # no test student
    report = export_lms(canvas_out, export, "canvas", tmp_path / "import.csv", "Convolution", "4711")
    assert rows(report.output) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Convolution (4711)"],
        [POINTS_POSSIBLE, "", "", "", "", "12"],
        ["Liddell, Alice", "101", "S101", "aliddell", "Section A", "12"],
        ["Builder, Bob", "102", "S102", "bbuilder", "Section B", "4.75"],
        ["Nobody, Nora", "104", "S104", "nnobody", "Section B", ""]]
    assert [s.name for s in report.matched.missing] == ["Nobody, Nora"]
    assert [r.submission for r in report.matched.unmatched] == ["strangerzed_555"]  # listed, as for any roster


def test_two_downloads_of_one_canvas_user_are_refused(canvas_out, tmp_path):
    records = Records(canvas_out)
    records.add(result("aliceagain_101", (1, 1)), "digest")
    records.close()
    export = tmp_path / "export.csv"
    export.write_text(CANVAS_EXPORT)
    with pytest.raises(ConfigError, match="several submissions carry the same LMS id: 101"):
        export_lms(canvas_out, export, "canvas", tmp_path / "import.csv")


def test_moodle_grading_worksheet_matched_by_participant_and_written_back(tmp_path, capsys):
    out = tmp_path / "moodle-grades"
    records = Records(out)
    for r in (result("Alice Liddell_123456_assignsubmission_file_", (8, 4)),
              result("Bob Builder_123457_assignsubmission_file_", (3.5, 1.25))):
        records.add(r, "digest")
    records.close()
    worksheet = tmp_path / "Grades-Convolution.csv"
    worksheet.write_text("Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,"
                         "Last modified (submission),Last modified (grade),Feedback comments\n"
                         "Participant 123456,Alice Liddell,alice@example.edu,Submitted for grading,,12.00,Yes,,,\n"
                         "Participant 123457,Bob Builder,bob@example.edu,Submitted for grading,,12.00,Yes,,,\n"
                         "Participant 123458,Nora Nobody,nora@example.edu,No submission,,12.00,Yes,,,\n")
    report = export_lms(out, worksheet, "moodle", tmp_path / "upload.csv")
    assert rows(report.output) == [["Identifier", "Full name", "Email address", "Grade", "Maximum Grade"],
                                   ["Participant 123456", "Alice Liddell", "alice@example.edu", "12", "12"],
                                   ["Participant 123457", "Bob Builder", "bob@example.edu", "4.75", "12"],
                                   ["Participant 123458", "Nora Nobody", "nora@example.edu", "", "12"]]
    assert [s.name for s in report.matched.missing] == ["Nora Nobody"] and report.matched.unmatched == []
    assert main(["gradebook", str(out), "--roster", str(worksheet), "--format", "moodle"]) == 0
    assert "Nora Nobody, Participant 123458" in " ".join(capsys.readouterr().out.split())


def test_adjusted_totals_reach_the_lms_file(canvas_out, tmp_path):
    records = Records(canvas_out)
    records.add_adjustment("builderbob_102", "", 2.0, "bonus")
    records.close()
    export = tmp_path / "export.csv"
    export.write_text(CANVAS_EXPORT)
    table = rows(export_lms(canvas_out, export, "canvas", tmp_path / "import.csv").output)
    assert table[3][-1] == "6.75"  # 4.75 + 2
