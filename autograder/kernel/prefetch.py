"""Preparing the next submission's sandbox and kernel while the current one is graded."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .session import Session
from .spec import KernelSpec


class Prefetch:
    """Prepares the next submission's sandbox and kernel while the current one is graded (one job at a time).

    Preparing runs on one long-lived thread: a sandbox ends with the thread that started it (bubblewrap's
    `--die-with-parent`), so that thread outlives every sandbox it prepared, until `close`.
    """

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchgrade-prefetch")
        self.pending: dict[tuple, Future] = {}

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def prepare(self, notebook: Path, student_files: Path | None, spec: KernelSpec) -> None:
        key = (notebook, student_files, spec)
        if key not in self.pending:
            self.pending[key] = self.pool.submit(self._prepared, notebook, student_files, spec)

    @staticmethod
    def _prepared(notebook: Path, student_files: Path | None, spec: KernelSpec) -> Session:
        session = Session(notebook, student_files, spec)
        try:
            session.prepare()
        except BaseException:
            session.stop()
            raise
        return session

    def session(self, notebook: Path, student_files: Path | None, spec: KernelSpec) -> Session:
        """The prepared session for this notebook, or a new one (also when preparing it failed)."""
        future = self.pending.pop((notebook, student_files, spec), None)
        if future is not None:
            try:
                return future.result()
            except Exception:  # the session starts again from scratch, and says why if it fails again
                pass
        return Session(notebook, student_files, spec)

    def close(self) -> None:
        for future in self.pending.values():
            try:
                future.result().stop()
            except Exception:
                pass
        self.pending.clear()
        self.pool.shutdown(wait=True)
