"""The sandbox: a fresh working directory and a fresh, resource-limited kernel.

The working directory holds only the submission and the student-visible files. The kernel
runs in its own process group with limits on memory (a watchdog on the resident size of
the whole group), file size and core dumps, with a cleaned environment (threads capped to
its share of the cores, seeds set before the first cell). Probe requests and responses go
through a private directory outside the working directory.
"""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Iterator

import nbformat
import psutil
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.util import run_sync

from .config import Limits

KERNEL_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE",
                   "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "SYSTEMROOT")
FILE_SIZE_LIMIT = 1 << 30  # no file written by a kernel grows beyond 1 GiB


@dataclass(frozen=True)
class KernelSpec:
    """Everything that shapes one kernel besides the notebook itself."""

    limits: Limits
    threads: int
    device: str
    seed: int
    gpu: int | None = None  # which GPU this kernel sees, on a runner with several


def kernel_env(workdir: Path, private: Path, spec: KernelSpec) -> dict[str, str]:
    env = {k: os.environ[k] for k in KERNEL_ENV_KEEP if k in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    threads = str(spec.threads)
    env.update(
        HOME=str(workdir),
        TMPDIR=str(workdir),
        IPYTHONDIR=str(private / "ipython"),
        MPLCONFIGDIR=str(private / "matplotlib"),
        MPLBACKEND="Agg",
        PYTHONHASHSEED=str(spec.seed),
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        OPENBLAS_NUM_THREADS=threads,
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        TORCHGRADE_DEVICE=spec.device,
    )
    if spec.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif spec.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(spec.gpu)
    return env


def limit_resources() -> None:  # runs in the kernel's process before exec
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def setup_code(spec: KernelSpec) -> str:
    """Runs silently before the first cell: seeds and thread count, nothing the student sees."""
    return (
        "import random as _r, numpy as _np, torch as _t\n"
        f"_r.seed({spec.seed}); _np.random.seed({spec.seed}); _t.manual_seed({spec.seed})\n"
        f"_t.set_num_threads({spec.threads})\n"
        "del _r, _np, _t\n"
    )


@functools.lru_cache(maxsize=1)
def no_network_prefix() -> tuple[str, ...]:
    """The command prefix that starts a process in a new, empty network namespace, if this host allows it.

    The kernel talks to the grader over unix sockets, so it needs no network at all.
    Returns () where neither plain `unshare --net` (root) nor a user namespace is available.
    """
    unshare = shutil.which("unshare")
    if not unshare or sys.platform != "linux":
        return ()
    for prefix in ((unshare, "--net"), (unshare, "--net", "--map-root-user")):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


class NoNetworkKernelManager(AsyncKernelManager):
    """Starts the kernel in its own network namespace (no interfaces but a down loopback)."""

    def format_kernel_cmd(self, extra_arguments=None):
        return [*no_network_prefix(), *super().format_kernel_cmd(extra_arguments)]


class MemoryWatchdog(threading.Thread):
    """Kills the kernel's process group when its resident memory passes the limit."""

    def __init__(self, pid: int, limit_mb: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.limit = pid, limit_mb * 1024 * 1024
        self.interval = interval
        self.tripped = False
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.wait(self.interval):
            try:
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs)
            except psutil.Error:
                continue
            self.peak = max(self.peak, rss)
            if rss > self.limit:
                self.tripped = True
                kill_group(self.pid)
                return

    def stop(self) -> None:
        self._stop_event.set()


def kill_group(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class OutputCappedClient(NotebookClient):
    """nbclient's client with a cap on how much output one cell may keep."""

    output_limit: int = 256 * 1024

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        sizes = self.__dict__.setdefault("_output_sizes", {})
        used = sizes.get(cell_index, 0)
        size = len(str(msg["content"]))
        sizes[cell_index] = used + size
        if used + size <= self.output_limit:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.output_limit:
            notice = nbformat.v4.new_output(
                "stream", name="stderr",
                text=f"\n[torchgrade: output of this cell cut at {self.output_limit // 1024} KiB]\n",
            )
            outs.append(notice)
        return None


class Kernel:
    """One running kernel: start, run code, stop. Its lifetime is owned by `Sandbox`."""

    def __init__(self, workdir: Path, private: Path, spec: KernelSpec, nb: nbformat.NotebookNode | None = None):
        self.spec = spec
        nb = nb if nb is not None else nbformat.v4.new_notebook()
        self.client = OutputCappedClient(
            nb,
            timeout=int(spec.limits.cell_timeout),
            allow_errors=True,
            interrupt_on_timeout=False,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
            startup_timeout=120,
            shutdown_kernel="immediate",  # the sandbox is thrown away: no graceful shutdown to wait for
        )
        self.client.output_limit = spec.limits.output_kb * 1024
        self.client.kernel_manager_class = NoNetworkKernelManager
        self.client.km = self.client.create_kernel_manager()
        self.client.km.transport = "ipc"  # unix sockets in the private folder: no TCP port at all
        self.client.km.connection_file = str(private / "kernel.json")
        self.client.km.ip = str(private / "kernel-ipc")
        run_sync(self.client.async_start_new_kernel)(
            env=kernel_env(workdir, private, spec), preexec_fn=limit_resources
        )
        run_sync(self.client.async_start_new_kernel_client)()
        self.pid = self.client.km.provisioner.pid
        self.watchdog = MemoryWatchdog(self.pid, spec.limits.memory_mb)
        self.watchdog.start()

    @property
    def killed_for_memory(self) -> bool:
        return self.watchdog.tripped

    def alive(self) -> bool:
        return bool(run_sync(self.client.km.is_alive)())

    def run_silently(self, code: str, timeout: float) -> str:
        """Runs code outside any cell; returns 'ok', 'error', 'timeout' or 'dead'."""
        return run_sync(self._run_silently)(code, timeout)

    async def _run_silently(self, code: str, timeout: float) -> str:
        kc = self.client.kc
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            try:
                msg = await kc.shell_channel.get_msg(timeout=min(remaining, 0.5))
            except (Empty, asyncio.TimeoutError):
                if not await self.client.km.is_alive():
                    return "dead"
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return "ok" if msg["content"].get("status") == "ok" else "error"

    def interrupt(self) -> None:
        run_sync(self.client.km.interrupt_kernel)()

    def recover(self, grace: float = 10.0) -> bool:
        """After a timeout: interrupt and check that the kernel answers again."""
        if not self.alive():
            return False
        self.interrupt()
        return self.run_silently("pass", grace) == "ok"

    def close(self) -> None:
        self.watchdog.stop()
        try:
            run_sync(self.client._async_cleanup_kernel)()
        finally:
            kill_group(self.pid)


class Sandbox:
    """A working directory with the student's files, and the kernel that runs there."""

    def __init__(self, root: Path, spec: KernelSpec):
        self.root = root
        self.workdir = root / "work"
        self.private = root / "private"
        self.spec = spec
        self.kernel: Kernel | None = None

    def start_kernel(self, nb: nbformat.NotebookNode | None = None) -> Kernel:
        self.stop_kernel()
        self.kernel = Kernel(self.workdir, self.private, self.spec, nb)
        self.kernel.run_silently(setup_code(self.spec), self.spec.limits.cell_timeout)
        return self.kernel

    def stop_kernel(self) -> None:
        if self.kernel is not None:
            kernel, self.kernel = self.kernel, None
            kernel.close()


@contextmanager
def open_sandbox(notebook: Path, student_files: Path | None, spec: KernelSpec) -> Iterator[Sandbox]:
    """Create the working directory, start the kernel, and clean both up whatever happens."""
    root = Path(tempfile.mkdtemp(prefix="torchgrade-"))
    box = Sandbox(root, spec)
    try:
        box.workdir.mkdir()
        box.private.mkdir(mode=0o700)
        if student_files is not None and student_files.is_dir():
            shutil.copytree(student_files, box.workdir, dirs_exist_ok=True)
        shutil.copy2(notebook, box.workdir / notebook.name)
        box.start_kernel()
        yield box
    finally:
        box.stop_kernel()
        shutil.rmtree(root, ignore_errors=True)
