"""The self-check packed into the student notebook, so that the notebook works on its own.

A notebook uploaded alone (to Colab, or handed out by an LMS that keeps only the `.ipynb`) has no `.torchgrade/`
folder beside it. So `assign` puts, before the notebook's setup cell, a cell holding the same files, zipped and
base64-encoded: the public checks, their configuration, the recorded expected values and the part of torchgrade
that runs them (the modules `autograder.selfcheck` and `autograder.checks` import, found by reading their imports).
Running it unpacks them into a folder of the temporary directory named by their digest, appends its `lib` to
`sys.path` (an installed torchgrade still comes first) and leaves the folder's path in `SELFCHECK_FILES`, where
`Grader()` looks when there is no `.torchgrade/` folder (`build/selfcheck.py`).

The setup cell after it stays the constant `SETUP_SOURCE`, which grading trusts by its text. The packed cell is
scanned like any other cell: it holds only imports of the standard library and string constants, and `assign`
refuses to write one that the scan would flag.
"""

from __future__ import annotations

import ast
import base64
import io
import zipfile
from pathlib import Path

import nbformat

from ..errors import BuildError
from ..kernel.integrity import scan_source
from ..config import AssignmentConfig
from .assignment import CONFIG_NAME, DATA_DIR, PACKED_VARIABLE, STUDENT_META, missing_beside
from .notebook import SETUP_SOURCE

PACKAGE = Path(__file__).resolve().parents[1]  # the autograder package
ROOTS = ("selfcheck.py", "checks/__init__.py")  # what a notebook's first cell and a public check import
PACKED_TAG = "selfcheck-files"  # the packed cell is found by this tag, never by position
META_FOLDER = STUDENT_META
LIB_FOLDER = "lib"
SKIPPED = ("__pycache__", LIB_FOLDER)
UNPACKED_LIMIT = 256 << 20  # bytes a packed cell may unpack to (`unpack`): its checks and values are far fewer

PACKED_SOURCE = """\
# The self-check, packed into this notebook so that it also works alone (uploaded to Colab, say): the public
# checks, their expected values and the code that runs them. Run this cell and the next; leave this one as it is.
import base64, hashlib, io, pathlib, sys, tempfile, zipfile
_packed = "{packed}"
_where = pathlib.Path(tempfile.gettempdir()) / ("selfcheck-" + hashlib.sha256(_packed.encode()).hexdigest()[:16])
try:
    zipfile.ZipFile(io.BytesIO(base64.b64decode(_packed))).extractall(_where)
except Exception as _error:  # a damaged copy: the folder handed out beside the notebook may still serve the next cell
    print("This self-check cell is damaged (" + type(_error).__name__ + ": " + str(_error)[:200] + "): take it from a "
          "fresh copy of the notebook. The next cell works without it only beside the folder handed out with it.")
else:
    if str(_where / "lib") not in sys.path:
        sys.path.append(str(_where / "lib"))
    {variable} = str(_where)"""


def selfcheck_modules() -> list[Path]:
    """The package's files the self-check needs: the import closure of ROOTS, with each package's __init__."""
    todo = [PACKAGE / r for r in ROOTS]
    found: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in found or not path.is_file():
            continue
        found.add(path)
        for parent in path.parents:
            if parent == PACKAGE.parent:
                break
            todo.append(parent / "__init__.py")
        todo += imported_files(path)
    return sorted(found)


def imported_files(path: Path) -> list[Path]:
    """The files of this package that `path` imports (relative or `autograder.` imports, anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                parts = node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == PACKAGE.name:
                base, parts = PACKAGE, node.module.split(".")[1:]
            else:
                continue
            target = base.joinpath(*parts)
            found += [target.with_suffix(".py"), target / "__init__.py"]
            found += [target / f"{a.name}.py" for a in node.names] + [target / a.name / "__init__.py" for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE.name:
                    target = PACKAGE.joinpath(*parts[1:])
                    found += [target.with_suffix(".py"), target / "__init__.py"]
    return found


def pack(meta: Path) -> str:
    """The student's `.torchgrade/` folder (less its `lib/` copy of the package) and the self-check's modules, as a
    base64 zip: `.torchgrade/...` and `lib/autograder/...`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(meta.rglob("*")):
            rel = path.relative_to(meta)
            if path.is_file() and rel.parts[0] not in SKIPPED and "__pycache__" not in rel.parts:
                write(zf, f"{META_FOLDER}/{rel.as_posix()}", path)
        for path in selfcheck_modules():
            write(zf, f"{LIB_FOLDER}/{path.relative_to(PACKAGE.parent).as_posix()}", path)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write(zf: zipfile.ZipFile, name: str, path: Path) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))  # the same files give the same bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, path.read_bytes())


def packed_cell(meta: Path) -> nbformat.NotebookNode:
    """The cell that carries `meta` inside the notebook; refused if grading's source scan would flag it."""
    cell = nbformat.v4.new_code_cell(PACKED_SOURCE.format(packed=pack(meta), variable=PACKED_VARIABLE))
    cell.metadata = {"tags": [PACKED_TAG], "jupyter": {"source_hidden": True}}
    findings = scan_source(nbformat.v4.new_notebook(cells=[cell]))
    if findings:
        raise BuildError("the packed self-check cell would be flagged by grading's source scan: "
                         + "; ".join(f.line() for f in findings), meta)
    return cell


def embed(notebook: Path, meta: Path) -> None:
    """Put (or replace) the packed cell of `meta` just before the notebook's setup cell."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if PACKED_TAG not in c.get("metadata", {}).get("tags", [])]
    setup = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source == SETUP_SOURCE), None)
    if setup is None:
        raise BuildError("the notebook has no setup cell to put the packed self-check before", notebook)
    nb.cells.insert(setup, packed_cell(meta))
    nbformat.write(nb, notebook)


def unpack(notebook: Path, into: Path) -> Path | None:
    """The `.torchgrade/` folder a notebook's packed cell carries, written under `into` (read from the cell's text,
    never run): for `torchgrade check` on a notebook with no folder beside it. None where it has no packed cell; a
    BuildError naming the notebook where it cannot be read or unpacked."""
    meta = into / META_FOLDER
    try:
        nb = nbformat.read(notebook, as_version=4)
        cell = next((c for c in nb.cells if PACKED_TAG in (c.get("metadata") or {}).get("tags", [])), None)
        if cell is None:
            return None
        packed = next((node.value.value for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                       and [getattr(t, "id", None) for t in node.targets] == ["_packed"]
                       and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)), None)
        if packed is None:
            raise ValueError("it holds no packed files")
        archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(packed, validate=True)))
        if sum(info.file_size for info in archive.infolist()) > UNPACKED_LIMIT:
            raise ValueError(f"it unpacks to more than {UNPACKED_LIMIT >> 20} MiB")
        if f"{META_FOLDER}/{CONFIG_NAME}" not in archive.namelist():
            raise ValueError(f"it holds no {META_FOLDER}/{CONFIG_NAME}")
        for info in archive.infolist():
            target = (into / info.filename).resolve()
            if info.filename.startswith(f"{META_FOLDER}/") and target.is_relative_to(meta.resolve()) and \
                    target != meta.resolve() and not info.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
    except Exception as exc:  # not JSON, not base64, not a zip, a member that cannot be read or written...
        raise BuildError(f"the packed self-check cell cannot be unpacked ({str(exc)[:200] or type(exc).__name__}): "
                         f"run `torchgrade check` with --assignment <student folder>, or take the cell from a fresh "
                         f"copy of the notebook", notebook) from None
    return meta


def files_beside(meta: Path, notebook: Path, into: Path) -> tuple[Path, list[str]]:
    """A student folder for a notebook checked alone: what the assignment hands out beside its notebook (its
    `student_files` and `data/`), linked from the notebook's folder where there, and nothing else of that folder
    (it is copied into each kernel's folder); and the names of those that are not there (`missing_beside`)."""
    config = AssignmentConfig.load(meta / CONFIG_NAME)
    files = into / "files"
    files.mkdir()
    folder = notebook.resolve().parent
    missing = missing_beside(config, folder)
    for rel in (*config.student_files, *((DATA_DIR,) if config.data else ())):
        source = folder / rel
        if rel not in missing and (files / rel).resolve().is_relative_to(files.resolve()):
            (files / rel).parent.mkdir(parents=True, exist_ok=True)
            (files / rel).symlink_to(source.resolve())
    return files, missing
