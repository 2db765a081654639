"""Which notebooks a `grade` run grades, and the name each submission is known by."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .errors import ConfigError

NOTEBOOK_SUFFIX = ".ipynb"


def find_submissions(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into the notebooks they hold (recursively); keep files as given."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found += sorted(p for p in path.rglob(f"*{NOTEBOOK_SUFFIX}")
                            if ".ipynb_checkpoints" not in p.parts and not any(x.startswith(".") for x in p.parts[len(path.parts):]))
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError("no such submission file or folder", path)
    names: dict[str, Path] = {}
    for p in found:
        if p.stem in names:
            raise ConfigError(f"two submissions share the name {p.stem!r}: {names[p.stem]} and {p}; "
                              "the submission name is the file name without .ipynb, so rename one", p)
        names[p.stem] = p
    return found
