"""Preparing the next submission's sandbox and kernel while the current one is graded."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .isolation import finish_closing
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
        self.held: list[tuple] = []  # to prepare once `release` says the current kernel is running

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def prepare(self, notebook: Path, student_files: Path | None, spec: KernelSpec, hold: bool = False) -> None:
        """Start preparing this notebook's sandbox and kernel; with `hold`, once `release` is called: a grader's
        first kernel starts alone, not beside the next one, when the machine is busiest (every worker's first kernel,
        and its own imports, at once)."""
        key = (notebook, student_files, spec)
        if key in self.pending or key in self.held:
            return
        if hold:
            self.held.append(key)
        else:
            self.pending[key] = self.pool.submit(self._prepared, notebook, student_files, spec)

    def release(self) -> None:
        """The current submission's kernel runs: what was held is prepared now."""
        held, self.held = self.held, []
        for key in held:
            self.prepare(*key)

    def _take(self, notebook: Path, student_files: Path | None, spec: KernelSpec) -> Future | None:
        """This notebook no longer held or pending: what was started for it, if anything."""
        key = (notebook, student_files, spec)
        if key in self.held:
            self.held.remove(key)
        return self.pending.pop(key, None)

    def discard(self, notebook: Path, student_files: Path | None, spec: KernelSpec) -> None:
        """What was prepared for this notebook is not needed: ended on the preparing thread, after what it holds."""
        future = self._take(notebook, student_files, spec)
        if future is not None:
            self.pool.submit(self._ended, future)

    @staticmethod
    def _ended(future: Future) -> None:
        try:
            future.result().stop()
        except Exception:  # it never started: nothing to end
            pass

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
        future = self._take(notebook, student_files, spec)
        if future is not None:
            try:
                return future.result()
            except Exception:  # the session starts again from scratch, and says why if it fails again
                pass
        return Session(notebook, student_files, spec)

    def close(self) -> None:
        for future in self.pending.values():
            self._ended(future)
        self.pending.clear()
        self.held.clear()
        # every sandbox this grader closed is gone before it returns (or its worker exits), waited for on the thread
        # that started them, after what it still has to do: its end would kill the bubblewraps still closing
        self.pool.submit(finish_closing).result()
        self.pool.shutdown(wait=True)
