"""Every extension point of torchgrade, in one place (as pytest's `hookspec.py` is): the registries, by name.

Each registry maps a name, as a user types it (`--executor dask`), to the object that implements it, given as
`"module:attribute"` so that reading the choices imports nothing heavy (the CLI builds its `choices=` from
here, and `--help` stays fast). `load(kind, name)` imports one and raises `UnknownExtension`, naming the known
ones, for a name that is not there. To add one, implement the contract below and add its line.

- `executor`: where a batch's submissions are graded. A class taking `GradeSettings`, with `check(assignment)`
  (fail before any work where the settings cannot be honoured or the assignment's checks do not load where they
  run; it may start its workers), `run(assignment, submissions, finish)` (call `finish(result)` in the calling
  process once per submission), `running()` and `close()` (end what it started) (`grading/executors.py`).
- `isolation`: how a kernel is kept from the grader. A class with no arguments whose `open(notebook,
  student_files, limits)` returns a `kernel.isolation.Sandbox`, and `check()` (raises
  `IsolationUnavailable`, saying what is missing, where it cannot isolate here). `auto` (a choice of `grade`
  and `run_autograder`, not an entry) picks `bwrap`, then `user` as root, then `none`
  (`kernel.isolation_user.pick_isolation`).
- `writer`: the files written per result into `--out`: a function `(out, result, config)`.
- `lms`: the file an LMS imports, `report.lms.LmsFormat` (the roster columns it needs, its rows).
- `feedback`: students' feedback as a zip an LMS bulk-imports, `export.feedback.FeedbackFormat` (the zip's
  entries per submission).
- `layout`: how submissions are named after the layout they came in (`grading/submissions.py`).
- `dataset`: data sets `assign` writes for an assignment's `data = [...]`: a function
  `(student_data, hidden_data)`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError

REGISTRIES: dict[str, dict[str, Any]] = {
    "executor": {
        "local": "autograder.grading.local_pool:LocalPool",
        "dask": "autograder.grading.dask_cluster:DaskCluster",
    },
    "isolation": {
        "bwrap": "autograder.kernel.isolation:Bubblewrap",
        "user": "autograder.kernel.isolation_user:UserIsolation",
        "none": "autograder.kernel.isolation:Unisolated",
    },
    "writer": {
        "feedback": "autograder.report.writers:write_feedback",
        "gradescope": "autograder.report.writers:write_gradescope",
    },
    "lms": {
        "canvas": "autograder.report.lms:CANVAS",
        "moodle": "autograder.report.lms:MOODLE",
        "csv": "autograder.report.lms:CSV",
    },
    "feedback": {
        "moodle": "autograder.export.feedback:MOODLE",
        "canvas": "autograder.export.feedback:CANVAS",
        "zip": "autograder.export.feedback:ZIP",
    },
    "layout": {
        "auto": "autograder.grading.submissions:name_auto",
        "file": "autograder.grading.submissions:name_by_file",
        "folder": "autograder.grading.submissions:name_by_folder",
        "pattern": "autograder.grading.submissions:name_by_pattern_in",
    },
    "dataset": {
        "mnist": "autograder.build.mnist:write_mnist",
    },
}

# what each extra needs installed, said when its import fails
EXTRAS = {("executor", "dask"): ("dask", "distributed", "pip install 'torchgrade[dask]'")}


class UnknownExtension(ConfigError):
    """A name that no registry holds."""


def choices(kind: str) -> tuple[str, ...]:
    return tuple(REGISTRIES[kind])


def load(kind: str, name: str) -> Any:
    """The object registered as `name` in the `kind` registry, imported now."""
    try:
        target = REGISTRIES[kind][name]
    except KeyError:
        raise UnknownExtension(f"unknown {kind} {name!r}; known: {', '.join(REGISTRIES.get(kind, {}))}") from None
    if not isinstance(target, str):  # registered as the object itself (a plug-in of one's own, a test's stand-in)
        return target
    module, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((kind, name))
        if extra and exc.name and exc.name.split(".")[0] in extra[:-1]:
            raise ConfigError(f"the {kind} {name!r} needs {', '.join(extra[:-1])}: {extra[-1]}") from exc
        raise
