"""One submission's kernel from start to stop, under one time budget.

A `Session` owns the sandbox, the warm kernel forked into it, the nbclient client that runs the
cells, the integrity channel out of the kernel and the memory watchdog; and one budget that the
cells, any replay and every probe draw from. A probe that does not answer in time is
interrupted; a kernel that does not come back, or dies, is replaced by a fresh sandbox and
kernel in which the cells that had run are replayed, and grading goes on with the next check.
Whatever happens, `stop` (or leaving the `with` block) ends every process of the submission.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync

from ..errors import TorchgradeError
from ..outcomes import Budget
from .integrity import Finding, IntegrityChannel
from .isolation import Sandbox, SandboxLimits, get_isolation
from .frames import MAX_RESPONSE_BYTES, AnswerTooLarge, recv_frame, send_frame
from .limits import Watchdog
from .output import CappedClient
from .provisioner import KernelProcess, SandboxKernelManager
from .spec import FILE_SIZE_LIMIT, KernelSpec, kernel_env
from .zygote import Zygote, zygote_for

MIB = 1024 * 1024
MAX_ERROR = 2000
INTERRUPT_GRACE = 5.0  # how long an interrupted call has to give control back
START_TIMEOUT = 120.0


class KernelStartError(TorchgradeError):
    """A kernel could not be started for a submission."""


@dataclass
class CellRun:
    index: int
    status: str  # ok | error | timeout | dead
    seconds: float
    error: str = ""
    label: str = ""


@dataclass
class ProbeAnswer:
    """What came back for one probe request: bytes to decode, or why there are none."""

    status: str  # ok | timeout | dead | budget | broken | error
    data: bytes = b""
    guard: list[str] = field(default_factory=list)  # forbidden library use or guard tampering seen in the call
    message: str = ""


def total_budget(spec: KernelSpec) -> float:
    limits = spec.limits
    return limits.total_timeout or 2 * limits.notebook_timeout


class Session:
    """A submission's sandboxed kernel: start, run cells, probe, interrupt, restart and replay, stop."""

    def __init__(self, notebook: Path, student_files: Path | None, spec: KernelSpec):
        self.notebook, self.student_files, self.spec = notebook, student_files, spec
        self.isolation = get_isolation(spec.isolation)
        self.budget = Budget(total_budget(spec))
        self.box: Sandbox | None = None
        self.client: CappedClient | None = None
        self.channel: IntegrityChannel | None = None
        self.watchdog: Watchdog | None = None
        self.nb = nbformat.v4.new_notebook()  # the submission's notebook, once execution starts
        self.ran: list[tuple[int, nbformat.NotebookNode]] = []  # cells that ran to their end, for a replay
        self.findings: list[Finding] = []
        self.warnings: list[str] = []  # what weakened this submission's sandbox (e.g. no system call filter)
        self.restarts = 0
        self.broken: str | None = None
        self.memory_peak = 0
        self.connection: dict[str, Any] = {}
        self.probe_socket: socket.socket | None = None
        self._kernel_end: socket.socket | None = None
        self.answer_limit = MAX_RESPONSE_BYTES  # the most one answer may carry; the kernel refuses larger ones
        self.zygote: Zygote | None = None  # the fork server of this session's kernel

    # ------------------------------------------------------------------------- lifetime

    def __enter__(self) -> "Session":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Prepare the sandbox and the kernel (unless `Prefetch` did already), then connect nbclient to it."""
        try:
            if self.box is None:
                self.prepare()
            self.attach()
        except KernelStartError:
            self.stop()
            raise
        except Exception as exc:
            self.stop()
            raise KernelStartError(f"the kernel did not start: {exc}") from exc

    def prepare(self) -> None:
        """The sandbox, and a kernel forked into it that boots on its own: no event loop involved, so this may
        run on another (long-lived) thread while the previous submission is graded."""
        limits, spec = self.spec.limits, self.spec
        self.zygote = zygote = zygote_for(spec)
        self.box = box = self.isolation.open(self.notebook, self.student_files, SandboxLimits(
            memory_bytes=limits.memory_mb * MIB, processes=limits.processes, disk_bytes=limits.disk_mb * MIB,
            file_bytes=FILE_SIZE_LIMIT, gpu=spec.device == "cuda"))
        self.channel = IntegrityChannel()
        self.probe_socket, self._kernel_end = socket.socketpair()
        self.connection = {"transport": "ipc", "ip": str(box.grader_runtime / "kernel"), "key": secrets.token_hex(32),
                           "signature_scheme": "hmac-sha256", "shell_port": 1, "iopub_port": 2, "stdin_port": 3,
                           "control_port": 4, "hb_port": 5, "kernel_name": "python3"}
        (box.grader_runtime / "kernel.json").write_text(json.dumps({**self.connection, "ip": f"{box.runtime_view}/kernel"}))
        request = {
            "join": box.join, "cgroups": box.cgroups.procs_files if box.cgroups else [], "cwd": box.workdir,
            "populate": box.populate, "env": kernel_env(spec, box.workdir, box.tmp_view),
            "connection_file": f"{box.runtime_view}/kernel.json", "seed": spec.seed, "threads": spec.threads,
            "rlimits": box.rlimits, "seccomp": box.seccomp, "user": box.user,
            "guard_ops": sorted(zygote.guard_ops),  # registered in the zygote once, for every later kernel
        }
        box.kernel_pid = zygote.spawn(request, [self.channel.write_fd, self._kernel_end.fileno()])
        self.channel.handed_over()
        self._kernel_end.close()
        self.watchdog = Watchdog(limits.memory_mb * MIB, box.processes, box.kill, box.cgroups,
                                 process_limit=box.process_limit)
        self.watchdog.start()

    def attach(self) -> None:
        """nbclient's client and jupyter_client's manager, on the kernel `prepare` started."""
        limits, box = self.spec.limits, self.box
        km = SandboxKernelManager(self.launch, connection_file=str(box.private / "kernel.json"))
        km.load_connection_info({**self.connection, "key": self.connection["key"].encode()})
        self.client = CappedClient(nbformat.v4.new_notebook(), km=km, timeout=int(limits.cell_timeout),
                                   allow_errors=True, interrupt_on_timeout=False, startup_timeout=120,
                                   shutdown_kernel="immediate")
        self.client.output_limit = limits.output_kb * 1024
        run_sync(self.client.async_start_new_kernel)()
        run_sync(self.client.async_start_new_kernel_client)()
        self.budget.start()  # the submission's clock: from its kernel attached, not from its sandbox prepared ahead

    def launch(self, connection: dict[str, Any]) -> int:
        """The provisioner's launcher: the kernel `prepare` forked, once it says its sockets are bound (so
        clients connect at once, with no reconnect delay); returns its pid."""
        box = self.box
        assert box is not None and box.kernel_pid is not None
        if int(connection["shell_port"]) != self.connection["shell_port"]:
            raise KernelStartError("the kernel manager chose other ports than the kernel listens on")
        process = KernelProcess(box.kernel_pid)
        try:
            header, _ = recv_frame(self.probe_socket, time.monotonic() + START_TIMEOUT, process.exited)
        except (TimeoutError, EOFError, OSError, ValueError) as exc:
            why = next((d for k, d in self.channel.lines if k == "X"), "") or f"no answer ({exc or type(exc).__name__})"
            raise KernelStartError(f"the kernel did not start: {why}") from None
        finally:
            process.close()
        if not header.get("ready"):
            raise KernelStartError("the kernel did not start: it did not say it was ready")
        return box.kernel_pid

    def stop(self) -> None:
        """End the kernel and everything its sandbox runs; keep what the channel reported."""
        detached = self.box.detached() if self.box is not None else []
        if detached:
            self.findings.append(Finding("detached-processes", "sandbox",
                                         "processes left the kernel and ran on: " + ", ".join(detached[:5])))
        others = bool(detached) or (self.box is not None and self.box.kernel_children())  # may hold the pipe too
        if self.watchdog is not None:
            self.watchdog.stop()
            self.memory_peak = max(self.memory_peak, self.watchdog.peak)
        if self.client is not None:
            kernel = self._kernel()
            if kernel is not None and self.spec.device != "cuda":
                # ended now, its exit (a forked kernel unmapping its memory, some hundredths of a second) reaped with
                # its sandbox's: the client finds it gone and only closes its channels. A GPU kernel's exit is waited
                # for (the client's shutdown): its memory is free before the next kernel starts.
                kernel.signal(signal.SIGKILL)
            try:
                run_sync(self.client._async_cleanup_kernel)()
            except Exception:  # the sandbox below is ended regardless
                pass
        if self.box is not None:  # a GPU kernel's memory is freed before the next kernel may start
            self.box.close(defer=self.spec.device != "cuda")
        if self.channel is not None:
            self.channel.close(wait=2.0 if others else 0.0)
            self.findings += [f for f in self.channel.findings() if f not in self.findings]
            self.warnings += [w for w in self.channel.warnings() if w not in self.warnings]
        for sock in (self.probe_socket, self._kernel_end):
            if sock is not None:
                sock.close()
        self.box = self.client = self.channel = self.probe_socket = self._kernel_end = self.watchdog = None

    @property
    def isolation_text(self) -> str:
        """The isolation this submission was graded under, as its results say it: `bwrap`, `none`, and what
        weakened it, if anything (`bwrap (no system call filter: libseccomp is not installed)`)."""
        return f"{self.spec.isolation} ({'; '.join(self.warnings)})" if self.warnings else self.spec.isolation

    @property
    def killed_for_memory(self) -> bool:
        return bool(self.watchdog and self.watchdog.tripped == "memory")

    def memory_limit_hits(self) -> int:
        """How often the memory limit was reached so far (0 where no memory cgroup counts it)."""
        box = self.box
        return box.cgroups.limit_hits() if box is not None and box.cgroups is not None else 0

    @property
    def killed_for_processes(self) -> bool:
        return bool(self.watchdog and self.watchdog.tripped == "processes")

    def alive(self) -> bool:
        return self.client is not None and bool(run_sync(self.client.km.is_alive)())

    # ------------------------------------------------------------------------- cells

    def run_cell(self, cell: nbformat.NotebookNode, index: int, timeout: float) -> CellRun:
        assert self.client is not None
        self.client.timeout = max(1, int(timeout))
        start = time.monotonic()
        try:
            self.client.execute_cell(cell, index)
        except CellTimeoutError:
            return CellRun(index, "timeout", time.monotonic() - start, label=cell_label(cell, index))
        except DeadKernelError:
            return CellRun(index, "dead", time.monotonic() - start, label=cell_label(cell, index))
        error = cell_error(cell)
        run = CellRun(index, "error" if error else "ok", time.monotonic() - start, error, cell_label(cell, index))
        self.ran.append((index, nbformat.from_dict(cell)))
        return run

    def run_silently(self, code: str, timeout: float) -> str:
        """Runs code outside any cell; returns 'ok', 'error', 'timeout' or 'dead'."""
        return run_sync(self._run_silently)(code, timeout)

    async def _run_silently(self, code: str, timeout: float) -> str:
        kc = self.client.kc
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await kc.shell_channel.get_msg(timeout=min(left, 0.25))
            except (Empty, asyncio.TimeoutError):
                if not await self.client.km.is_alive():
                    return "dead"
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return "ok" if msg["content"].get("status") == "ok" else "error"
        return "timeout"

    def interrupt(self, grace: float = INTERRUPT_GRACE) -> bool:
        """Interrupt the kernel; True if it answers again within `grace` seconds."""
        if not self.alive():
            return False
        run_sync(self.client.km.interrupt_kernel)()
        return self.run_silently("pass", grace) == "ok"

    def restart(self, why: str) -> bool:
        """A fresh sandbox and kernel, with the cells that had run replayed; False if that failed."""
        ran = self.ran
        self.stop()
        self.restarts += 1
        self.ran = []
        if self.budget.left() <= 1:
            self.broken = f"{why}; no time was left in the submission's budget to restart its kernel"
            return False
        try:
            self.start()
        except TorchgradeError as exc:
            self.broken = f"{why}; the kernel could not be restarted ({exc.message})"
            return False
        self.client.nb = nbformat.from_dict(self.nb)  # replayed outputs do not replace the first run's
        for index, cell in ran:
            run = self.run_cell(nbformat.from_dict(cell), index, self.budget.limit(self.spec.limits.cell_timeout))
            if run.status in ("timeout", "dead"):
                self.broken = f"{why}; replaying {run.label} in a fresh kernel failed ({run.status})"
                return False
        return True

    # ------------------------------------------------------------------------- probes

    def probe(self, request: dict[str, Any], guarded: bool, timeout: float) -> ProbeAnswer:
        """One request to the probe server in the kernel, with the budget's and the call's time limits."""
        if self.broken:
            return ProbeAnswer("broken", message=self.broken)
        timeout = self.budget.limit(timeout)
        if timeout <= 0:
            return ProbeAnswer("budget", message=f"the submission's time budget ({self.budget.seconds:g} s) ran out")
        call_id = secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        if guarded and self.zygote is not None:  # the operators the guard sees: the zygote registers them once
            self.zygote.guard_ops.update((request.get("forbid") or {}).get("ops") or ())
        from .codec import encode_request  # torch: only once a check asks (a kernel starts without it)

        try:
            send_frame(self.probe_socket, {"id": call_id, "guarded": guarded, "limit": self.answer_limit},
                       encode_request(request), deadline)
            status, data = self._reply(call_id, deadline)
        except TimeoutError:
            return self._after_timeout(call_id, timeout)
        except AnswerTooLarge as exc:  # the answer was read and thrown away: the kernel is fine
            guard = self.channel.call_events(call_id, b"") if guarded else []
            return ProbeAnswer("too-large", message=str(exc), guard=[g for g in guard if "answer" not in g])
        except (EOFError, OSError, ValueError):
            why = "the kernel passed the memory limit" if self.killed_for_memory else "the kernel died"
            self.restart(why)
            return ProbeAnswer("dead", message=f"{why} during this call")
        guard = self.channel.call_events(call_id, data) if guarded else []
        return ProbeAnswer(status if status in ("ok", "error") else "error", data, guard)

    def _reply(self, call_id: str, deadline: float) -> tuple[str, bytes]:
        """The kernel's answer to `call_id` (answers to calls given up on earlier are skipped)."""
        while True:
            header, data = recv_frame(self.probe_socket, deadline, self._kernel_gone, self.answer_limit)
            if header.get("id") == call_id:
                return str(header.get("status", "error")), data

    def _kernel(self) -> KernelProcess | None:
        provisioner = self.client.km.provisioner if self.client is not None else None
        return getattr(provisioner, "kernel", None)

    def _kernel_gone(self) -> bool:
        kernel = self._kernel()
        return kernel is None or kernel.exited()

    def _after_timeout(self, call_id: str, timeout: float) -> ProbeAnswer:
        message = f"did not finish within {timeout:g} s"
        run_sync(self.client.km.interrupt_kernel)()
        try:
            self._reply(call_id, time.monotonic() + INTERRUPT_GRACE)
            return ProbeAnswer("timeout", message=f"{message} (interrupted)")
        except (TimeoutError, EOFError, OSError, ValueError):
            self.restart(f"a call {message} and did not stop when interrupted")
            return ProbeAnswer("timeout", message=f"{message}; the kernel did not stop when interrupted and was "
                                                  "replaced by a fresh one")


def cell_label(cell: nbformat.NotebookNode, index: int) -> str:
    """`cell 12 (for epoch in range(...))`: the number, and the first line so students find it."""
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")
    return f"cell {index + 1} ({first[:60]})" if first else f"cell {index + 1}"


def cell_error(cell: nbformat.NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:MAX_ERROR]
    return ""
