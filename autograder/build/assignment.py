"""Loading an assignment for grading or self-checking, from any of its three forms.

- the source folder (`assignments/<name>/`): master notebook, `checks/`, config, and the
  reference module that the config names;
- the autograder bundle (`dist/<name>/autograder/`): what `assign` wrote for graders;
- the student bundle's `.torchgrade/` folder: public checks and recorded expected values.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from ..config import CONFIG_NAME, AssignmentConfig
from ..errors import ConfigError, TorchgradeError

if TYPE_CHECKING:
    from ..checks import CheckSet
    from ..checks.figures import FigureSet

CHECKS_DIR = "checks"
STUDENT_META = ".torchgrade"
PACKED_VARIABLE = "SELFCHECK_FILES"  # where the notebook's packed cell unpacked its `.torchgrade/` (build/embed.py)
EXPECTED_NAME = "expected.pt"
BUNDLE_REFERENCE = "reference.py"
BUNDLE_STUDENT_FILES = "student_files"
DATA_DIR = "data"  # the data handed out beside a notebook (a student folder's `data/`)
BUNDLE_SOLUTION = "solution.ipynb"
BUNDLE_HIDDEN = "hidden"
BLANK_NAME = "blank.ipynb"  # the notebook students start from, kept in the autograder bundle


@dataclass
class Grading:
    """What grading runs in the grader: the checks, the reference they compare with, the feedback's figures (torch
    and the instructor's code: imported where submissions are graded, which a batch's orchestrator may not be)."""

    checks: CheckSet
    reference: Any  # the reference module, or a Replay of its recorded values
    figures: FigureSet


@dataclass(eq=False)
class Assignment:
    root: Path
    kind: str  # source | bundle | student
    config: AssignmentConfig
    student_files: Path | None  # copied into every sandbox next to the notebook
    hidden: Path | None = None  # hidden test data and grader-only models (autograder bundle only)
    loader: Callable[[], Grading] | None = field(default=None, repr=False)  # the checks, loaded on first use
    _grading: Grading | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def grading(self) -> Grading:
        if self._grading is None:
            assert self.loader is not None
            self._grading = self.loader()
        return self._grading

    @property
    def checks(self) -> CheckSet:
        return self.grading.checks

    @property
    def reference(self) -> Any:
        return self.grading.reference

    @property
    def figures(self) -> FigureSet:
        return self.grading.figures

    def load(self) -> "Assignment":
        """The checks, reference and figures loaded now (a ConfigError naming the file where they do not load)."""
        self.grading
        return self

    def fingerprint(self) -> str:
        """A digest of every file of the assignment (its configuration, checks, reference, hidden data and student
        files): a result recorded under another one was graded by other checks, and a rerun grades it again. Of a
        notebook, its content without the cells' ids, which each build draws anew (a source folder is built again
        for every batch)."""
        h = hashlib.sha256()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            data = path.read_bytes()
            if path.suffix == ".ipynb":
                data = without_cell_ids(data)
            h.update(f"{path.relative_to(self.root).as_posix()}\0{len(data)}\0".encode())
            h.update(data)
        return h.hexdigest()


def without_cell_ids(data: bytes) -> bytes:
    """A notebook's JSON with its cells' `id`s left out (as it is, if it is not a notebook)."""
    try:
        nb = json.loads(data)
        for cell in nb.get("cells", []):
            if isinstance(cell, dict):
                cell.pop("id", None)
        return json.dumps(nb, sort_keys=True).encode()
    except (ValueError, AttributeError, TypeError):
        return data


def load_assignment(path: Path, lazy: bool = False) -> Assignment:
    """Load whichever form of an assignment `path` is; with `lazy`, only its configuration now, its checks and
    reference when first used (`Assignment.load`)."""
    path = Path(path).resolve()
    if (path / STUDENT_META / CONFIG_NAME).is_file() and not (path / CONFIG_NAME).exists():
        return load_student_checks(path / STUDENT_META)
    if path.name == STUDENT_META:
        return load_student_checks(path)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"no {CONFIG_NAME} here: not an assignment folder or autograder bundle", path)
    config = AssignmentConfig.load(config_path)
    bundle = (path / BUNDLE_REFERENCE).is_file() and (path / BUNDLE_STUDENT_FILES).is_dir()
    if not bundle and not config.reference:
        raise ConfigError("the configuration names no `reference` module", config_path)
    assignment = Assignment(path, "bundle" if bundle else "source", config,
                            path / BUNDLE_STUDENT_FILES if bundle else None, path / BUNDLE_HIDDEN if bundle else None,
                            partial(load_grading, path, config, bundle))
    return assignment if lazy else assignment.load()


def load_grading(path: Path, config: AssignmentConfig, bundle: bool) -> Grading:
    """An assignment's checks (validated against its questions), figures and reference module; instructor code that
    raises as it loads is a ConfigError naming its file and line."""
    try:
        checks_pkg = load_package(path / CHECKS_DIR, f"{config.name}_{'bundle' if bundle else 'source'}")
        try:
            checks = module_checks(checks_pkg, "public", path) + module_checks(checks_pkg, "hidden", path)
            checks.validate(config.question_ids, path / CHECKS_DIR)
            figures = module_figures(checks_pkg, path)
            figures.validate(config.question_ids, path / CHECKS_DIR)
        except TorchgradeError as exc:
            raise ConfigError(exc.message, path / CHECKS_DIR) from exc
        reference_path = path / BUNDLE_REFERENCE if bundle else (path / config.reference).resolve()
        return Grading(checks, load_module(reference_path, f"reference_{config.name}"), figures)
    except TorchgradeError:
        raise
    except (Exception, SystemExit) as exc:  # SystemExit: instructor code that calls sys.exit() as it loads
        raise raised_while_loading(exc, path) from exc


def raised_while_loading(exc: BaseException, root: Path) -> ConfigError:
    """An exception of the instructor's code as it loaded, as one line: the file and line it was raised at (the
    last place under `root` its traceback passes through), and what it raised."""
    what = traceback.format_exception_only(type(exc), exc)[-1].strip()
    if isinstance(exc, SyntaxError) and exc.filename:
        return ConfigError(f"line {exc.lineno}: {what}", exc.filename)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().is_relative_to(root)]
    if not frames:
        return ConfigError(f"raised {what} as it loaded", root)
    return ConfigError(f"line {frames[-1].lineno}: raised {what} as it loaded", frames[-1].filename)


def load_student_checks(meta: Path, root: Path | None = None) -> Assignment:
    """The public checks of a student bundle's `meta` folder; `root` (default its parent) holds the notebook's
    `data/`."""
    from ..checks.figures import FigureSet
    from .recorded import Replay

    config = AssignmentConfig.load(meta / CONFIG_NAME)
    checks_pkg = load_package(meta, f"{config.name}_student")
    checks = module_checks(checks_pkg, "public", meta)
    checks.validate(config.question_ids, meta)
    replay = Replay.load(meta / EXPECTED_NAME)
    root = meta.parent if root is None else root
    return Assignment(root, "student", config, root, loader=partial(Grading, checks, replay, FigureSet())).load()


def module_checks(package: ModuleType, name: str, where: Path) -> CheckSet:
    from ..checks import CheckSet

    return module_set(package, name, "checks", CheckSet, where)


def module_figures(package: ModuleType, where: Path) -> FigureSet:
    """`checks/figures.py`'s figures; none when the assignment has no such file."""
    from ..checks.figures import FigureSet

    return module_set(package, "figures", "figures", FigureSet, where)


def module_set(package: ModuleType, name: str, attribute: str, kind: type, where: Path):
    """`checks/<name>.py`'s `<attribute> = <kind>()`; an empty one when there is no such file."""
    try:
        module = importlib.import_module(f"{package.__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{package.__name__}.{name}":
            return kind()
        raise ConfigError(f"checks/{name}.py cannot import {exc.name}", where) from exc
    value = getattr(module, attribute, None)
    if not isinstance(value, kind):
        raise ConfigError(f"{module.__file__} defines no `{attribute} = {kind.__name__}()`", where)
    return value


def unique_name(prefix: str, path: Path) -> str:
    """A module name for the code at `path` (a file, or a package folder), from its place and its contents: loaded
    once per process, and loaded afresh once edited (an author who validates, edits and validates again)."""
    h = hashlib.sha1(str(path.resolve()).encode())
    for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
        if source.is_file():
            h.update(source.name.encode() + source.read_bytes())
    return f"_torchgrade_{prefix}_{h.hexdigest()[:10]}".replace("-", "_")


def load_package(folder: Path, prefix: str) -> ModuleType:
    init = folder / "__init__.py"
    if not init.is_file():
        raise ConfigError(f"{folder} has no __init__.py: checks are a package", folder)
    name = unique_name(prefix, folder)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
    return execute(name, spec)


def load_module(path: Path, prefix: str) -> ModuleType:
    if not path.is_file():
        raise ConfigError("reference module not found", path)
    name = unique_name(prefix, path)
    if name in sys.modules:
        return sys.modules[name]
    return execute(name, importlib.util.spec_from_file_location(name, path))


def execute(name: str, spec) -> ModuleType:
    """Run a module's code under `name`; one that raises leaves nothing behind in `sys.modules` (it or any of its
    submodules), so the next load runs it again instead of handing out a half-initialised module."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        raise
    return module


def missing_beside(config: AssignmentConfig, folder: Path) -> list[str]:
    """What the assignment hands out beside its notebook (its `student_files`, and `data/` where it has data) that
    is not in `folder`, the notebook's: the cells and checks that read them cannot run there."""
    handed_out = (*config.student_files, *((DATA_DIR,) if config.data else ()))
    return [rel for rel in handed_out if not (folder / rel).exists()]


def missing_beside_text(missing: list[str]) -> str:
    return (f"not beside the notebook: {', '.join(missing)} (handed out with it: put them back beside it, or the "
            "cells and checks that read them cannot run)")
