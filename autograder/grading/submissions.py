"""Which notebooks a `grade` run grades, and the name each submission is known by.

Courses get submissions in several layouts, and `find_submissions` names them so:
- notebooks side by side in one folder (or given as files): the file name without `.ipynb`;
- a folder per student, or Gradescope's export of a folder per submission (`submission_123/...`):
  the folder's name (`auto` picks this when every folder holds exactly one notebook);
- an LMS bulk download, files named after the student (Canvas: `name_[LATE_]userid_subid_file.ipynb`):
  the student part of the name, through `--name-pattern` (a regular expression with a `student`
  group and an optional `id` group; Canvas's form is the default).

`auto` picks the layout from what it finds. Two notebooks that would get the same name, or a folder
holding several notebooks where one was expected, are an error that lists them: never merged.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError
from ..extensions import load

NOTEBOOK_SUFFIX = ".ipynb"
CANVAS_PATTERN = r"(?P<student>[^_]+)_(?:LATE_)?(?P<id>\d+)_\d+_.+"
SKIPPED = (".ipynb_checkpoints", "__MACOSX")


@dataclass(frozen=True)
class Submission:
    name: str
    path: Path


def as_submission(item: Submission | Path | str) -> Submission:
    return item if isinstance(item, Submission) else Submission(Path(item).stem, Path(item))


def find_submissions(paths: Iterable[Path], naming: str = "auto", pattern: str | None = None) -> list[Submission]:
    """The notebooks in `paths` (files as given, folders searched recursively), each with its name given by the
    layout `naming` (a name of the `layout` registry, `extensions.py`)."""
    layout = load("layout", naming)
    try:
        regex = re.compile(pattern or CANVAS_PATTERN)
    except re.error as exc:
        raise ConfigError(f"--name-pattern is not a regular expression: {exc}") from exc
    if "student" not in regex.groupindex:
        raise ConfigError("--name-pattern needs a group named 'student', e.g. (?P<student>[^_]+)_.*")
    found: list[Submission] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += layout(Folder(path, notebooks_in(path), regex, pattern is not None))
        elif path.exists():
            found.append(Submission(name_by_pattern(path, regex) if naming == "pattern" else path.stem, path))
        else:
            raise ConfigError("no such submission file or folder", path)
    return unique(found)


@dataclass(frozen=True)
class Folder:
    """A folder given to `grade`: its notebooks, the name pattern, and whether the user gave that pattern."""

    root: Path
    notebooks: list[Path]
    regex: re.Pattern
    explicit: bool


def notebooks_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(f"*{NOTEBOOK_SUFFIX}")
                  if not any(x.startswith(".") or x in SKIPPED for x in p.parts[len(folder.parts):]))


def name_by_file(folder: Folder) -> list[Submission]:
    """Notebooks side by side: each is named after its file."""
    return [Submission(p.stem, p) for p in folder.notebooks]


def name_by_pattern_in(folder: Folder) -> list[Submission]:
    """An LMS bulk download: names from the pattern (Canvas's `name_[LATE_]userid_subid_file` by default)."""
    return [Submission(name_by_pattern(p, folder.regex), p) for p in folder.notebooks]


def name_by_folder(folder: Folder) -> list[Submission]:
    """A folder per student (or Gradescope's `submission_*` folders), each holding one notebook."""
    root, notebooks = folder.root, folder.notebooks
    loose = [p for p in notebooks if p.parent == root]
    if loose:
        raise ConfigError("folder naming expects one folder per submission, but these notebooks lie directly in "
                          f"{root}: {', '.join(p.name for p in loose)}", root)
    by_folder: dict[str, list[Path]] = defaultdict(list)
    for p in notebooks:
        by_folder[p.relative_to(root).parts[0]].append(p)
    several = {k: v for k, v in by_folder.items() if len(v) > 1}
    if several:
        listing = "; ".join(f"{k}/: {', '.join(str(p.relative_to(root / k)) for p in v)}" for k, v in several.items())
        raise ConfigError("each submission folder must hold one notebook, but these hold several (remove the extra "
                          f"ones, or pass the notebooks themselves): {listing}", root)
    return [Submission(name, paths[0]) for name, paths in sorted(by_folder.items())]


def name_auto(folder: Folder) -> list[Submission]:
    """Folders each holding one notebook: folder names; LMS file names: the pattern; else file names."""
    root, notebooks = folder.root, folder.notebooks
    loose = [p for p in notebooks if p.parent == root]
    folders: dict[str, int] = defaultdict(int)
    for p in notebooks:
        if p.parent != root:
            folders[p.relative_to(root).parts[0]] += 1
    if folders and not loose and max(folders.values()) == 1:
        return name_by_folder(folder)
    if loose and not folders and (folder.explicit or all(folder.regex.fullmatch(p.stem) for p in loose)):
        return name_by_pattern_in(folder)
    return name_by_file(folder)


def name_by_pattern(path: Path, regex: re.Pattern) -> str:
    match = regex.fullmatch(path.stem)
    if match is None:
        raise ConfigError(f"the file name does not match the name pattern {regex.pattern!r}; rename it or pass "
                          "--name-pattern", path)
    student, ident = match.group("student"), match.groupdict().get("id")
    return f"{student}_{ident}" if ident else student


def unique(found: list[Submission]) -> list[Submission]:
    paths: dict[str, list[Path]] = defaultdict(list)
    for submission in found:
        paths[submission.name].append(submission.path)
    clashes = {name: ps for name, ps in paths.items() if len(ps) > 1}
    if clashes:
        listing = "; ".join(f"{name!r}: {', '.join(map(str, ps))}" for name, ps in clashes.items())
        raise ConfigError(f"two submissions would share a name, so one would overwrite the other: {listing}. "
                          "Rename one, or choose another naming (--name-from folder|file|pattern); student folders "
                          "given one by one are named after what they hold: give the folder that holds them instead")
    return found
