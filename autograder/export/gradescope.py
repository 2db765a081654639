"""`torchgrade export gradescope`: an assignment as a Gradescope autograder zip.

The zip's root holds what Gradescope runs (`setup.sh`, `run_autograder`, see `scripts.py`), the autograder
bundle (`bundle/`, as `assign` writes it, less the model answer: grading needs none) and torchgrade itself
(`torchgrade/autograder/`, the package's source, with `torchgrade/requirements.txt`, its dependencies), so
that Gradescope needs no release of torchgrade. Given an assignment's source folder, the bundle is built and
proved first, exactly as `assign` does (`grading/proof.py`): an assignment `assign` refuses is not exported.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..build.assignment import BUNDLE_SOLUTION, load_assignment
from ..config import AssignmentConfig, GradeSettings
from ..errors import ConfigError
from .scripts import RUN_AUTOGRADER, SETUP_SH

PACKAGE = Path(__file__).resolve().parent.parent  # the autograder package
ZIP_BUNDLE = "bundle"
ZIP_SOURCE = "torchgrade"
SKIPPED = ("__pycache__", ".ipynb_checkpoints")
LEFT_OUT = (BUNDLE_SOLUTION,)  # bundle files grading does not need and a submission must not find
EXECUTABLE = 0o755


@dataclass(frozen=True)
class ExportReport:
    zip_path: Path
    name: str
    files: int
    bytes: int
    time_limit: float  # seconds: the assignment's budget per submission; Gradescope's limit must exceed it


def export_gradescope(assignment: Path, zip_path: Path, settings: GradeSettings | None = None) -> ExportReport:
    """Write the autograder zip for `assignment` (its source folder, built and proved as `assign` does, or an
    autograder bundle `assign` wrote) at `zip_path`; a source folder that fails the proof exports nothing."""
    loaded = load_assignment(assignment)
    if loaded.kind == "student":
        raise ConfigError("this is a student bundle; export the autograder bundle or the source folder", assignment)
    if loaded.kind == "bundle":
        return write_zip(loaded.root, loaded.config, zip_path)
    from ..grading.proof import assign  # torch loads only here
    from ..kernel.isolation import trusted_isolation

    with tempfile.TemporaryDirectory(prefix="torchgrade-export-") as tmp:
        report = assign(loaded.root, Path(tmp), settings or GradeSettings(isolation=trusted_isolation()))
        return write_zip(report.autograder_dir, load_assignment(report.autograder_dir).config, zip_path)


def write_zip(bundle: Path, config: AssignmentConfig, zip_path: Path) -> ExportReport:
    entries = zip_entries(bundle)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=zip_path.parent, prefix=f".{zip_path.name}.")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            add_text(zf, "setup.sh", SETUP_SH, EXECUTABLE)
            add_text(zf, "run_autograder", RUN_AUTOGRADER, EXECUTABLE)
            add_text(zf, f"{ZIP_SOURCE}/requirements.txt", "\n".join(requirements()) + "\n")
            for name, path in entries:
                zf.write(path, name)
        os.replace(tmp, zip_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    limits = config.limits
    files = sum(1 for name, _ in entries if not name.endswith("/")) + 3
    return ExportReport(zip_path, config.name, files, zip_path.stat().st_size,
                        limits.total_timeout or 2 * limits.notebook_timeout)


def zip_entries(bundle: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file here): the bundle under `bundle/`, torchgrade's source under `torchgrade/`."""
    entries = [(f"{ZIP_BUNDLE}/{rel}", path) for rel, path in files_below(bundle) if rel not in LEFT_OUT]
    entries += [(f"{ZIP_SOURCE}/{PACKAGE.name}/{rel}", path) for rel, path in files_below(PACKAGE)]
    return entries


def files_below(root: Path) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIPPED for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_dir():
            found.append((rel.as_posix() + "/", path))  # kept even when empty: the bundle's layout is its kind
        elif path.is_file():
            found.append((rel.as_posix(), path))
    return found


def add_text(zf: zipfile.ZipFile, name: str, text: str, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions (unzip keeps them)
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, text)


def requirements() -> list[str]:
    """torchgrade's runtime dependencies: from the checkout's pyproject.toml, else from the installed metadata."""
    pyproject = PACKAGE.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "torchgrade":
            return list(project.get("dependencies", []))
    try:
        required = importlib.metadata.requires("torchgrade") or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("cannot tell torchgrade's dependencies: no pyproject.toml next to the package and no "
                          "installed distribution") from None
    return [r for r in required if "extra ==" not in r]
