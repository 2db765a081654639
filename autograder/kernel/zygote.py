"""Warm kernels: a fork server that imports torch once per worker, and forks a fresh kernel per start.

The zygote is started by a grading worker with the kernels' environment. It imports torch,
torchvision, numpy, pandas, matplotlib, IPython and ipykernel, and a private copy of the probe
code, then waits. It never runs student code and never initialises CUDA, so every kernel it
forks starts from the same pristine interpreter: no modules, globals, files, processes or
random state of an earlier submission survive into the next. `boot` does the rest in the child.

Protocol (a SOCK_SEQPACKET pair): the worker sends one JSON request with the kernel's end of the
integrity pipe and of the probe socket attached (SCM_RIGHTS); the zygote answers `{"pid": ...}`
or `{"error": ...}`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import TorchgradeError

PRELOAD = ("numpy", "torch", "torchvision", "pandas", "matplotlib", "matplotlib.pyplot", "scipy", "IPython",
           "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "matplotlib_inline.backend_inline",
           "autograder.selfcheck", "autograder.kernel.kernel_side")
PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1 << 20


class ZygoteError(TorchgradeError):
    """The fork server could not start, or could not fork a kernel."""


def preload() -> list[str]:
    import importlib

    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # optional modules may be missing; kernels import what they need themselves
            pass
    return loaded


def serve(sock: socket.socket) -> None:
    from . import boot, kernel_side

    start = time.perf_counter()
    loaded = preload()
    probe = kernel_side.load_private()
    probe["origin"] = probe["default_origin"]()
    import torch

    torch.set_num_threads(1)  # no OpenMP pool may exist at a fork: a forked pool deadlocks the child
    try:
        probe["warm_up"](probe["origin"])
    except Exception:  # a slower first guarded call, not a failure
        pass
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphaned kernels are reaped here...
    signal.signal(signal.SIGCHLD, lambda *_: reap())  # ...at once: a sandbox ends only when all its pids are free
    sock.send(json.dumps({"ready": True, "pid": os.getpid(), "seconds": time.perf_counter() - start,
                          "preloaded": loaded, "threads": len(os.listdir("/proc/self/task"))}).encode())
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
        except InterruptedError:
            continue
        if not message:
            return  # the worker is gone
        try:
            request = json.loads(message)
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_initialized():  # never true: nothing here touches CUDA
                raise ZygoteError("CUDA was initialised in the zygote; refusing to fork")
            if len(fds) != 2:
                raise ZygoteError("a kernel needs its integrity pipe and its probe socket")
            reply: dict[str, Any] = {"pid": boot.spawn(request, fds, probe)}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(reply).encode())


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Zygote:
    """The worker's handle on its fork server: started on first use, restarted if it died."""

    def __init__(self, env: dict[str, str], start_timeout: float = 180.0):
        self.env = env
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.info: dict[str, Any] = {}
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-c", BOOTSTRAP, str(PACKAGE_PARENT), str(theirs.fileno())],
            env=self.env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.stderr, cwd="/", start_new_session=True,
        )
        theirs.close()
        mine.settimeout(self.start_timeout)
        try:
            self.info = json.loads(mine.recv(MAX_MESSAGE) or b"{}")
        except (socket.timeout, json.JSONDecodeError) as exc:
            self.close()
            raise ZygoteError(f"the kernel fork server did not start ({exc})") from exc
        if not self.info.get("ready"):
            self.stderr.seek(0)
            detail = self.stderr.read().decode(errors="replace")[-2000:]
            self.close()
            raise ZygoteError(f"the kernel fork server did not start: {detail.strip()}")
        mine.settimeout(None)
        self.sock = mine

    def spawn(self, request: dict[str, Any], fds: list[int], timeout: float = 60.0) -> int:
        """Fork a kernel as `request` says (see `boot.spawn`), handing it `fds`; returns its host pid."""
        with self.lock:
            if not self.alive():
                self.close()
                self.start()
            assert self.sock is not None
            self.sock.settimeout(timeout)
            try:
                socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
                reply = json.loads(self.sock.recv(MAX_MESSAGE) or b"{}")
            except (OSError, socket.timeout, json.JSONDecodeError) as exc:
                self.close()
                raise ZygoteError(f"the kernel fork server failed ({exc})") from exc
        if "pid" not in reply:
            raise ZygoteError(f"could not start a kernel: {reply.get('error', 'no answer')}")
        return int(reply["pid"])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.process.wait()
            self.process = None
            self.stderr.close()


# The zygote finds this package even when torchgrade runs from a checkout that is not installed.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
BOOTSTRAP = ("import sys, importlib.util; sys.path.remove('') if '' in sys.path else None; "
             "sys.path.append(sys.argv[1]) if importlib.util.find_spec('autograder') is None else None; "
             "from autograder.kernel.zygote import main; main(int(sys.argv[2]))")


def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    try:
        serve(sock)
    except KeyboardInterrupt:
        pass


