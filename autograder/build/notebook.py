"""Notebooks: reading submissions, and turning a master notebook into student and solution ones.

Master notebooks use otter-grader's assign markers, so instructors who know otter can write
them: a raw cell `# BEGIN QUESTION` (YAML below it with `name:`) opens a question and a raw
cell `# END QUESTION` closes it; inside code cells, `# BEGIN SOLUTION` / `# END SOLUTION`
blocks and lines ending in `# SOLUTION` are model answers. Stripping them is otter's own
`replace_solutions`. Written answers (a `kind = "manual"` question) are otter's too: markdown cells between raw
cells `# BEGIN SOLUTION` and `# END SOLUTION` are the model answer, replaced in the student notebook by one
answer cell (tagged `answer:<question>`, where the grading sheet finds the student's answer); a raw cell whose
first line is `# RUBRIC` holds the question's rubric, for graders only (kept in the solution notebook, tagged
`rubric:<question>`). HTML comments in markdown cells (`<!-- ... -->`, outside code) are notes for instructors: the
student notebook leaves them out (a cell left with nothing but them, entirely).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from ..errors import ConfigError, InvalidSubmission

SOLUTION_MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")
RUBRIC_MARKER = "# RUBRIC"
ANSWER_PROMPT = "_Type your answer here, replacing this text._"
SETUP_SOURCE = (
    "# Self-check: run this cell first. `grader.check(\"<question>\")` runs a question's public checks.\n"
    "# It ships in the .torchgrade folder next to this notebook and needs only PyTorch (the CPU build is enough):\n"
    "#   pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu\n"
    "import sys\n"
    "sys.path.append(\".torchgrade/lib\")\n"
    "from autograder.selfcheck import Grader\n"
    "grader = Grader()"
)


def read_submission(path: Path) -> nbformat.NotebookNode:
    """Read a student's notebook, or raise `InvalidSubmission` saying what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSubmission.from_exception(path, exc) from exc
    if not text.strip():
        raise InvalidSubmission("the file is empty", path)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(f"not a notebook: the file is not JSON ({exc.msg} at line {exc.lineno})", path) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise InvalidSubmission("not a notebook: JSON without a list of cells", path)
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for malformed notebooks
        raise InvalidSubmission.from_exception(path, exc) from exc
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or "cell_type" not in cell or "source" not in cell:
            raise InvalidSubmission(f"not a notebook: cell {i + 1} has no cell_type or source", path)
    return nb


def otter_blocks():
    """otter-grader's block markers and solution stripping, imported when a master notebook is read: importing otter
    takes about a second, which grading (reading submissions) never needs."""
    from otter.assign.blocks import BlockType, is_block_boundary_cell
    from otter.assign.solutions import replace_solutions

    return BlockType, is_block_boundary_cell, replace_solutions


@dataclass(frozen=True)
class Master:
    """A parsed master notebook: its cells, and the question each cell belongs to (or None)."""

    path: Path
    nb: nbformat.NotebookNode
    questions: list[str]

    @classmethod
    def read(cls, path: Path) -> "Master":
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:
            raise ConfigError(f"cannot read master notebook: {exc}", path) from exc
        BlockType, is_block_boundary_cell, _ = otter_blocks()
        questions: list[str] = []
        current: str | None = None
        for i, cell in enumerate(nb.cells):
            if is_block_boundary_cell(cell, BlockType.QUESTION, end=False):
                if current is not None:
                    raise ConfigError(f"cell {i + 1}: question {current!r} is not closed before the next one", path)
                current = question_name(cell, path, i)
                questions.append(current)
            elif is_block_boundary_cell(cell, BlockType.QUESTION, end=True):
                if current is None:
                    raise ConfigError(f"cell {i + 1}: END QUESTION without BEGIN QUESTION", path)
                current = None
        if current is not None:
            raise ConfigError(f"question {current!r} is never closed (END QUESTION)", path)
        return cls(path, nb, questions)

    def student(self) -> nbformat.NotebookNode:
        """The notebook students get: model answers replaced by `...`, a check after each question."""
        return self._build(keep_solutions=False)

    def solution(self) -> nbformat.NotebookNode:
        """The same notebook with the model answers in place: a submission that earns full marks."""
        return self._build(keep_solutions=True)

    def _build(self, keep_solutions: bool) -> nbformat.NotebookNode:
        BlockType, is_block_boundary_cell, replace_solutions = otter_blocks()
        nb = copy.deepcopy(self.nb)
        cells = []
        current: str | None = None
        setup_done = False
        written = False  # inside a written answer's solution block
        manual = False  # the current question is a written answer: no self-check after it
        for i, cell in enumerate(nb.cells):
            if is_block_boundary_cell(cell, BlockType.SOLUTION, end=False):
                written = manual = True
                continue
            if is_block_boundary_cell(cell, BlockType.SOLUTION, end=True):
                written = False
                if not keep_solutions:
                    cells.append(tagged(nbformat.v4.new_markdown_cell(ANSWER_PROMPT), f"answer:{current}"))
                continue
            if cell.cell_type == "raw" and cell.source.lstrip().startswith(RUBRIC_MARKER):
                if keep_solutions:
                    cells.append(tagged(cell, f"rubric:{current}"))
                continue
            if written and cell.cell_type == "markdown":
                if keep_solutions:
                    cells.append(tagged(cell, f"answer:{current}"))
                continue
            if is_block_boundary_cell(cell, BlockType.QUESTION, end=False):
                current = question_name(cell, self.path, i)
                continue
            if is_block_boundary_cell(cell, BlockType.QUESTION, end=True):
                if not manual:
                    cells.append(new_code_cell(f'grader.check("{current}")'))
                current, manual = None, False
                continue
            if cell.cell_type == "markdown" and not keep_solutions:
                cell.source = without_html_comments(cell.source)
                if not cell.source.strip():
                    continue
            if cell.cell_type == "code":
                if not setup_done:
                    cells.append(new_code_cell(SETUP_SOURCE))
                    setup_done = True
                lines = cell.source.split("\n")
                try:
                    lines = strip_markers(lines) if keep_solutions else replace_solutions(lines, "python")
                except AssertionError as exc:
                    raise ConfigError(f"cell {i + 1}: {exc}", self.path) from exc
                cell.source = "\n".join(lines)
                cell.outputs, cell.execution_count = [], None
            cells.append(cell)
        cells.append(new_code_cell("grader.check_all()"))
        nb.cells = cells
        nb.metadata.pop("otter", None)
        return nb


# leftmost first: a comment that holds backticks is a comment, a code span or fence that holds `<!--` is code
COMMENT_OR_CODE = re.compile(r"(<!--.*?-->)|```.*?```|~~~.*?~~~|`[^`\n]*`", re.DOTALL)


def without_html_comments(markdown: str) -> str:
    """`markdown` without its HTML comments, except where they are code (fenced blocks, inline code), and without
    the blank lines a removed comment would leave at its ends."""
    kept = COMMENT_OR_CODE.sub(lambda m: "" if m.group(1) else m.group(0), markdown)
    return re.sub(r"\n{3,}", "\n\n", kept).strip("\n") if kept != markdown else markdown


def question_name(cell: nbformat.NotebookNode, path: Path, index: int) -> str:
    body = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
    try:
        config = yaml.safe_load(body) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cell {index + 1}: question config is not YAML: {exc}", path) from exc
    name = config.get("name") if isinstance(config, dict) else None
    if not name:
        raise ConfigError(f"cell {index + 1}: BEGIN QUESTION without a `name:`", path)
    return str(name)


def strip_markers(lines: list[str]) -> list[str]:
    kept = []
    for line in lines:
        stripped = line.rstrip()
        if stripped.lstrip().startswith(SOLUTION_MARKERS):
            continue
        for suffix in ("# SOLUTION NO PROMPT", "# SOLUTION"):
            if stripped.endswith(suffix):
                line = stripped[: -len(suffix)].rstrip()
                break
        kept.append(line)
    return kept


def tagged(cell: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    cell.setdefault("metadata", {}).setdefault("tags", []).append(tag)
    return cell


def tagged_cells(nb: nbformat.NotebookNode, tag: str) -> list[str]:
    """The sources of the cells carrying `tag` (cells are found by tag, never by position)."""
    return [c.source for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def new_code_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
