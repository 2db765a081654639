"""Where a batch's submissions are graded: executors, chosen by name (`--executor`).

An executor grades each submission as one task on a worker process that loads the assignment once and
keeps a warm zygote (`worker.py`), and calls `finish(result)` in the calling process once per submission, as
results arrive; the batch records them (`batch.py`). A worker's death is charged to the one submission it was
running, never to the others in flight: that submission is graded again `worker.RETRIES` times, then gets an
`error` row.

Executors are registered in `extensions.py` (`executor`):
- `local` (the default): worker processes on this machine (`local_pool.py`);
- `dask`: the workers of a Dask distributed cluster, or a LocalCluster of `--jobs` processes
  (`dask_cluster.py`; dask is imported only when this one is chosen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..config import GradeSettings
from ..extensions import load

if TYPE_CHECKING:
    from ..build.assignment import Assignment
    from .submissions import Submission
    from .worker import Finish


class Executor(Protocol):
    def check(self, assignment: "Assignment") -> None:
        """Fail before any work where submissions cannot be graded as the settings ask (device, isolation), or the
        assignment's checks do not load where they will run; may start what the batch runs on (`close` ends it).
        An executor may also have `expect(submissions)`, called first with what the batch will likely grade, in
        order, as far as is known before its records are read (a worker may start preparing its first one)."""

    def close(self) -> None:
        """End what `check` or `run` started (workers, the zygote); called once the batch is over, however it ends."""

    def run(self, assignment: "Assignment", submissions: "list[Submission]", finish: "Finish") -> None:
        """Grade every submission; `finish` is called here, once per submission, as results arrive."""

    def running(self) -> dict[str, int]:
        """What the workers are grading now: submission name → the process id of the worker grading it."""


def get_executor(settings: GradeSettings) -> Executor:
    return load("executor", settings.executor)(settings)
