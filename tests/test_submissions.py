"""How `grade` finds submissions and names them, for the layouts courses get from their LMS."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.errors import ConfigError
from autograder.grading.submissions import find_submissions


def notebooks(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    return root


def names(found) -> dict[str, str]:
    return {s.name: s.path.name for s in found}


def test_notebooks_side_by_side_are_named_after_their_files(tmp_path):
    root = notebooks(tmp_path, "alice.ipynb", "bob.ipynb", ".ipynb_checkpoints/alice-checkpoint.ipynb",
                     ".hidden/x.ipynb")
    assert names(find_submissions([root])) == {"alice": "alice.ipynb", "bob": "bob.ipynb"}


def test_a_folder_per_student_is_named_after_the_folder(tmp_path):
    root = notebooks(tmp_path, "alice/convolution.ipynb", "bob/work/convolution.ipynb",
                     "bob/.ipynb_checkpoints/convolution-checkpoint.ipynb", "__MACOSX/alice/convolution.ipynb")
    assert names(find_submissions([root])) == {"alice": "convolution.ipynb", "bob": "convolution.ipynb"}


def test_gradescope_export_is_named_after_its_submission_folders(tmp_path):
    root = notebooks(tmp_path, "submission_101/convolution.ipynb", "submission_102/convolution (1).ipynb")
    (root / "submission_metadata.yml").write_text("submission_101: {}\n")
    assert names(find_submissions([root])) == {"submission_101": "convolution.ipynb",
                                               "submission_102": "convolution (1).ipynb"}


def test_canvas_bulk_download_is_named_after_the_student(tmp_path):
    root = notebooks(tmp_path, "smithjohn_1234_5678_convolution.ipynb", "doejane_LATE_42_99_convolution-1.ipynb")
    assert names(find_submissions([root])) == {"smithjohn_1234": "smithjohn_1234_5678_convolution.ipynb",
                                               "doejane_42": "doejane_LATE_42_99_convolution-1.ipynb"}


def test_a_custom_pattern_names_files(tmp_path):
    root = notebooks(tmp_path, "hw3-alice.ipynb", "hw3-bob.ipynb")
    assert set(names(find_submissions([root], pattern=r"hw3-(?P<student>\w+)"))) == {"alice", "bob"}
    with pytest.raises(ConfigError, match="does not match the name pattern"):
        find_submissions([root / "hw3-alice.ipynb"], "pattern", r"hw4-(?P<student>\w+)")
    with pytest.raises(ConfigError, match="group named 'student'"):
        find_submissions([root], pattern=r"hw3-\w+")


def test_student_folders_given_one_by_one_clash_with_advice(tmp_path):
    """Two students' unzipped handouts given one by one: each holds `stats.ipynb`. Names stay what each folder's
    layout gives (stable from one run to the next), and the clash says to give the folder that holds them."""
    root = notebooks(tmp_path, "alice/stats/stats.ipynb", "bob/stats.ipynb")
    with pytest.raises(ConfigError, match="give the folder that holds them instead"):
        find_submissions([root / "alice", root / "bob"])
    assert names(find_submissions([root])) == {"alice": "stats.ipynb", "bob": "stats.ipynb"}


def test_files_given_one_by_one_keep_their_names(tmp_path):
    root = notebooks(tmp_path, "a/sol.ipynb", "b/other.ipynb")
    assert names(find_submissions([root / "a/sol.ipynb", root / "b/other.ipynb"])) == {
        "sol": "sol.ipynb", "other": "other.ipynb"}


def test_ambiguities_are_refused_with_every_path_listed(tmp_path):
    root = notebooks(tmp_path, "alice/convolution.ipynb", "bob/convolution.ipynb", "bob/convolution-Copy1.ipynb")
    with pytest.raises(ConfigError) as error:
        find_submissions([root])  # bob's folder holds two: neither folder nor file names are unambiguous
    assert "alice/convolution.ipynb" in str(error.value) and "bob/convolution.ipynb" in str(error.value)
    with pytest.raises(ConfigError, match="bob/: convolution-Copy1.ipynb, convolution.ipynb"):
        find_submissions([root], "folder")
    with pytest.raises(ConfigError, match="lie directly in"):
        find_submissions([notebooks(tmp_path / "mixed", "x.ipynb", "carol/y.ipynb")], "folder")


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(ConfigError) as error:
        find_submissions([tmp_path / "nope"])
    assert error.value.path == tmp_path / "nope"
