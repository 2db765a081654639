"""What `torchgrade` prints: every character of names and messages, in a table that fits the terminal."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pandas as pd
from rich.console import Console

from autograder.report.terminal import print_gradebook, print_progress
from autograder.outcomes import QuestionScore, SubmissionResult

QUESTIONS = ["conv2d_single", "conv2d", "max_pool2d", "sobel", "generator", "discriminator", "weights_init"]


def terminal(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, highlight=False, color_system=None)


def gradebook(names: list[str]) -> pd.DataFrame:
    rows = [{"submission": name, **{q: 1.5 for q in QUESTIONS}, "total": 10.5, "max_total": 21.0,
             "status": "ok", "flags": float("nan")} for name in names]
    rows[0]["flags"] = "processes"
    return pd.DataFrame(rows)


def test_markup_characters_survive_in_names_and_messages():
    out = terminal(120)
    result = SubmissionResult("bob[red]", "invalid", [QuestionScore("conv2d", 0, 5)],
                              "output[i, j] = sum(window * kernel) [bold]not bold[/bold]")
    print_progress(result, out)
    print_gradebook(gradebook(["bob[red]", "[link=x]eve[/link]"]), out)
    text = out.file.getvalue()
    assert "bob[red]" in text and "output[i, j] = sum(window * kernel) [bold]not bold[/bold]" in text
    assert "[link=x]eve[/link]" in text


def test_the_gradebook_stays_readable_at_80_columns():
    out = terminal(80)
    frame = gradebook(["alice_smith_1234", "bob[red]", "carol"])
    print_gradebook(frame, out)
    text = out.file.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text  # nothing truncated
    for i, question in enumerate(QUESTIONS, 1):
        assert f"Q{i} = {question}" in text  # a legend names every numbered column, on one line
    for name in ("alice_smith_1234", "bob[red]", "carol", "processes"):
        assert name in text


def test_a_very_narrow_terminal_gets_a_line_per_submission():
    out = terminal(40)
    print_gradebook(gradebook(["alice_smith_1234", "bob"]), out)
    text = " ".join(out.file.getvalue().split())
    assert "…" not in text and all(len(line) <= 40 for line in out.file.getvalue().splitlines())
    assert "gradebook (out of 21)" in text and "alice_smith_1234: 10.5 ok" in text and "conv2d_single 1.5" in text and "flags: processes" in text


def test_a_wide_terminal_gets_the_full_column_names():
    out = terminal(200)
    print_gradebook(gradebook(["alice"]), out)
    assert all(q in out.file.getvalue() for q in QUESTIONS) and "Q1" not in out.file.getvalue()


def test_help_is_fast_because_nothing_heavy_loads_before_parsing():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", "grade", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--name-from" in proc.stdout
    modules = subprocess.run([sys.executable, "-c", "import sys, autograder.cli.parser; print(sorted(sys.modules))"],
                             capture_output=True, text=True).stdout
    assert "'torch'" not in modules and "'pandas'" not in modules  # what makes --help slow is never imported
    print(f"torchgrade grade --help: {time.perf_counter() - start:.2f} s")
