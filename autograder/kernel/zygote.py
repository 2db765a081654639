"""Warm kernels: a fork server that imports torch once per worker, and forks a fresh kernel per start.

The zygote is started by a grading worker with the kernels' environment. It imports torch, numpy,
IPython and ipykernel, of torchvision, pandas and matplotlib those the assignment's solution imports
(all of them where it knows no assignment), and a private copy of the probe code, then waits. It never runs student code and never initialises CUDA, so every kernel it
forks starts from the same pristine interpreter: no modules, globals, files, processes or
random state of an earlier submission survive into the next. `boot` does the rest in the child.

One zygote serves a whole batch: the process that starts the batch starts it (its imports run
while the workers start), and every worker connects to its socket, in a folder only the grader's
user can enter. Protocol (SOCK_SEQPACKET): on connecting, a worker receives a greeting once the
imports are done; then it sends one JSON request per kernel with the kernel's end of the integrity
pipe and of the probe socket attached (SCM_RIGHTS); the zygote answers `{"pid": ...}` or
`{"error": ...}`. It ends with the process that started it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
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
from .spec import KernelSpec, base_env

# What every kernel needs (about 1.5 s to import: torch is most of it)...
PRELOAD = ("numpy", "torch", "IPython", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell",
           "ipykernel.debugger", "IPython.core.completerlib", "psutil",
           "faulthandler", "tornado.platform.asyncio",  # what IPKernelApp.initialize imports: 0.1 s per kernel
           "autograder.selfcheck", "autograder.kernel.kernel_side",
           "zmq.utils.garbage",  # ZeroMQ's collector, which each kernel starts before its first cell (not its thread)
           "encodings.cp437")  # the self-check cell's zip names its files in it
# ...and what many notebooks import (about 1.7 s more, torchvision most of it): a batch's zygote imports those its
# assignment's solution imports (`notebook_modules`), a zygote that knows no assignment all of them
PRELOAD_OPTIONAL = ("torchvision", "pandas", "matplotlib", "matplotlib.pyplot", "scipy",
                    "matplotlib_inline.backend_inline")  # with matplotlib: `%matplotlib inline` imports it
KEPT_OUT = ("debugpy", "jedi")  # a debugger, completions: what no grading kernel is asked for
PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1 << 20


class ZygoteError(TorchgradeError):
    """The fork server could not start, or could not fork a kernel."""


def preload(names: tuple[str, ...] = PRELOAD) -> list[str]:
    import importlib

    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # optional modules may be missing; kernels import what they need themselves
            pass
    return loaded


def preload_without_debugger(names: tuple[str, ...]) -> list[str]:
    """`preload`, with what ipykernel and IPython import only to offer a debugger and completions kept out (`KEPT_OUT`):
    ipykernel then gives its kernels no debugger, IPython completes without jedi (nbclient asks for neither), and the
    zygote does not pay the tenth of a second they take to import. A notebook may still import them."""
    blocked = [name for name in KEPT_OUT if sys.modules.setdefault(name, None) is None]
    try:
        return preload(names)
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def serve(listener: socket.socket, wanted: tuple[str, ...] | None = None) -> None:
    """Import once (`PRELOAD`, and of `PRELOAD_OPTIONAL` those `wanted`, all if None), then fork kernels for every
    worker that connects, one request at a time."""
    import selectors

    from . import boot, kernel_side
    from .heap import imports_without_collection

    start = time.perf_counter()
    # what is imported is never collected: the imports run faster, a kernel's collections stay small, and its pages
    # shared (no collection first: after the imports it finds a handful of objects, for a tenth of a second)
    with imports_without_collection():
        loaded = preload_without_debugger((*PRELOAD, *(m for m in PRELOAD_OPTIONAL if wanted is None or m in wanted)))
        probe = kernel_side.load_private()
        probe["origin"] = probe["default_origin"]()
        import torch

        torch.set_num_threads(1)  # no OpenMP pool may exist at a fork: a forked pool deadlocks the child
        try:
            probe["warm_up"](probe["origin"])
        except Exception:  # a slower first guarded call, not a failure
            pass
        probe["keep_attributes"]()  # once here, for every kernel's tripwires
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphaned kernels are reaped here...
    signal.signal(signal.SIGCHLD, lambda *_: reap())  # ...at once: a sandbox ends only when all its pids are free
    greeting = json.dumps({"ready": True, "pid": os.getpid(), "seconds": time.perf_counter() - start,
                           "preloaded": loaded,
                           "threads": len(os.listdir("/proc/self/task"))}).encode()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                client, _ = listener.accept()
                client.send(greeting)
                selector.register(client, selectors.EVENT_READ)
                continue
            client = key.fileobj
            try:
                message, fds, _, _ = socket.recv_fds(client, MAX_MESSAGE, 2)
            except (InterruptedError, ConnectionError, OSError):
                message, fds = b"", []
            if not message:
                selector.unregister(client)
                client.close()
                continue
            reply = json.dumps(handle(message, fds, probe, boot)).encode()
            try:
                client.send(reply)
            except OSError:  # its worker died mid-request: the other workers keep their fork server
                selector.unregister(client)
                client.close()


def handle(message: bytes, fds: list[int], probe: dict[str, Any], boot: Any) -> dict[str, Any]:
    try:
        request = json.loads(message)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():  # never true: nothing here touches CUDA
            raise ZygoteError("CUDA was initialised in the zygote; refusing to fork")
        if len(fds) != 2:
            raise ZygoteError("a kernel needs its integrity pipe and its probe socket")
        if request.get("guard_ops"):  # the library guard's kernels for these, once here rather than in every kernel
            probe["OP_KERNELS"].cover(tuple(str(op) for op in request["guard_ops"]))
        return {"pid": boot.spawn(request, fds, probe)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for fd in fds:
            os.close(fd)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Zygote:
    """A handle on a fork server: the one this process started (and stops), or one another process
    started for the whole batch, reached by its socket's path. A zygote that died is replaced by one of
    this process's own."""

    def __init__(self, env: dict[str, str], address: str | None = None, start_timeout: float = 300.0,
                 wanted: tuple[str, ...] | None = None):
        self.env = env
        self.wanted = wanted  # which of PRELOAD_OPTIONAL it imports (None: all)
        self.guard_ops: set[str] = set()  # operator name fragments guarded calls forbade: sent with each request
        self.address = address
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.folder: str | None = None
        self.sock: socket.socket | None = None
        self.info: dict[str, Any] = {}
        self.lock = threading.Lock()

    def launch(self) -> str:
        """Start a zygote of this process's own; it imports in the background. Returns its address.

        It is started from a thread that lasts as long as this process (`launcher`): it ends with the thread that
        started it (PR_SET_PDEATHSIG), and the thread that first needs it may be short-lived (a prefetch's)."""
        self.folder = tempfile.mkdtemp(prefix="torchgrade-zygote-")
        self.address = os.path.join(self.folder, "zygote.sock")
        self.stderr = tempfile.TemporaryFile()
        self.process = launcher().run_here(lambda: subprocess.Popen(
            [sys.executable, "-c", BOOTSTRAP, str(PACKAGE_PARENT), self.address,
             "*" if self.wanted is None else ",".join(self.wanted), str(os.getpid())],  # the owner last
            env={**self.env, "MPLCONFIGDIR": self.folder}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.stderr, cwd="/", start_new_session=True,
        ))
        return self.address

    def connect(self) -> None:
        if self.address is None:
            self.launch()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        deadline = time.monotonic() + self.start_timeout
        refused_since = None
        while True:  # the zygote binds its socket first thing; give it a moment to exist
            try:
                sock.connect(self.address)
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                now = time.monotonic()
                refused_since = (refused_since or now) if isinstance(exc, ConnectionRefusedError) else None
                gone = (self.process.poll() is not None if self.process is not None  # ours exited; another's
                        else refused_since is not None and now - refused_since > 1.0)  # bound, not listening: gone
                if now > deadline or gone:
                    sock.close()
                    raise ZygoteError(f"the kernel fork server did not start{self._why()}") from None
                time.sleep(0.02)
        sock.settimeout(self.start_timeout)
        try:
            self.info = json.loads(sock.recv(MAX_MESSAGE) or b"{}")
        except (OSError, json.JSONDecodeError) as exc:
            sock.close()
            raise ZygoteError(f"the kernel fork server did not start ({exc}){self._why()}") from exc
        if not self.info.get("ready"):
            sock.close()
            raise ZygoteError(f"the kernel fork server did not start{self._why()}")
        self.sock = sock

    def _why(self) -> str:
        if self.process is None:
            return ""
        self.stderr.seek(0)
        detail = self.stderr.read().decode(errors="replace").strip()[-2000:]
        return f": {detail}" if detail else ""

    def spawn(self, request: dict[str, Any], fds: list[int], timeout: float = 60.0) -> int:
        """Fork a kernel as `request` says (see `boot.spawn`), handing it `fds`; returns its host pid. A request
        that could not be sent (the zygote is gone: ours died, or the batch's ended) is sent to its replacement."""
        with self.lock:
            for last in (False, True):
                self._connected()
                assert self.sock is not None
                self.sock.settimeout(timeout)
                try:
                    socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
                except OSError as exc:  # not delivered: no kernel was forked for it
                    self.sock.close()
                    self.sock = None
                    if not last:  # the zygote is gone: `_connected` replaces it
                        continue
                    raise ZygoteError(f"the kernel fork server failed ({exc})") from exc
                try:
                    reply = json.loads(self.sock.recv(MAX_MESSAGE) or b"{}")
                except (OSError, json.JSONDecodeError) as exc:
                    self.sock.close()
                    self.sock = None
                    raise ZygoteError(f"the kernel fork server failed ({exc})") from exc
                break
        if "pid" not in reply:
            raise ZygoteError(f"could not start a kernel: {reply.get('error', 'no answer')}")
        return int(reply["pid"])

    def _connected(self) -> None:
        """Connected to a zygote: ours, replaced if it died, or the batch's, replaced by ours if it is gone."""
        if self.sock is None and self.process is not None and self.process.poll() is not None:
            self.close()  # ours died (killed, out of memory): a fresh one of our own
            self.address = None
        if self.sock is None:
            try:
                self.connect()
            except ZygoteError:
                if self.process is not None:
                    raise
                self.address = None  # the batch's zygote is gone: start one of our own
                self.connect()

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
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


# The zygote finds this package even when torchgrade runs from a checkout that is not installed.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
BOOTSTRAP = ("import sys, importlib.util; sys.path.remove('') if '' in sys.path else None; "
             "sys.path.append(sys.argv[1]) if importlib.util.find_spec('autograder') is None else None; "
             "from autograder.kernel.zygote import main; main(sys.argv[2], int(sys.argv[4]), sys.argv[3])")
PR_SET_PDEATHSIG = 1


def main(address: str, owner: int, wanted: str = "*") -> None:
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # it ends with the process that owns it
    if os.getppid() != owner:
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)  # first of all, so that workers can connect while the imports run
    listener.listen(64)
    try:
        serve(listener, None if wanted == "*" else tuple(m for m in wanted.split(",") if m))
    except KeyboardInterrupt:
        pass


class Launcher(threading.Thread):
    """A thread that lasts as long as this process, to start zygotes from (`run_here`). Plain: concurrent.futures
    would cost the command a hundredth of a second more before its zygote starts."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="torchgrade-zygote-launcher")
        import queue

        self.requests: Any = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            call, answer, done = self.requests.get()
            try:
                answer.append(call())
            except BaseException as exc:  # handed back to the caller
                answer.append(exc)
            done.set()

    def run_here(self, call: Any) -> Any:
        answer: list = []
        done = threading.Event()
        self.requests.put((call, answer, done))
        done.wait()
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return answer[0]


_LAUNCHER: list[Launcher] = []  # made on first use
_LAUNCHER_LOCK = threading.Lock()


def launcher() -> Launcher:
    with _LAUNCHER_LOCK:
        if not _LAUNCHER:
            _LAUNCHER.append(Launcher())
            _LAUNCHER[0].start()
        return _LAUNCHER[0]


def _forget_launcher() -> None:
    """In a forked child: none of its parent's threads, and its lock as no thread holds it."""
    global _LAUNCHER_LOCK
    _LAUNCHER.clear()
    _LAUNCHER_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_launcher)
_ZYGOTES: dict[tuple, Zygote] = {}
_EARLY: dict[tuple, Zygote] = {}  # started by `prestart_zygote`, not yet taken by a batch


def zygote_for(spec: KernelSpec) -> Zygote:
    """The fork server for kernels like `spec`: the batch's (`spec.zygote`), or one of this process's own
    (one per thread count, seed and device)."""
    env = base_env(spec)
    key = (spec.zygote, *sorted(env.items()))
    if key not in _ZYGOTES:
        _ZYGOTES[key] = Zygote(env, spec.zygote)
    return _ZYGOTES[key]


def notebook_modules(notebook: Path) -> tuple[str, ...] | None:
    """The modules of `PRELOAD_OPTIONAL` that `notebook` (an assignment's solution) imports, which its batch's zygote
    imports once (the others would cost the first kernel a second, and its notebooks likely never use them); None
    where there is no notebook to read."""
    import ast

    try:  # plain JSON: nbformat and IPython would cost this process a third of a second before the zygote starts
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except Exception:  # no solution to read: all of them
        return None
    names: set[str] = set()
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # magics
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    roots = {name.split(".")[0] for name in names}
    if "matplotlib" in roots:
        names.add("matplotlib_inline.backend_inline")
    return tuple(m for m in PRELOAD_OPTIONAL if m in names or m.split(".")[0] in roots and "." not in m)


def prestart_zygote(spec: KernelSpec, wanted: tuple[str, ...] | None = None) -> None:
    """Start the zygote a batch like `spec` will ask `start_zygote` for, now: `torchgrade grade` calls it before its
    own imports (a second or two), so that both import at once."""
    key = (tuple(sorted(base_env(spec).items())), wanted)
    if key not in _EARLY:
        _EARLY[key] = Zygote(base_env(spec), wanted=wanted)
        _EARLY[key].launch()


def start_zygote(spec: KernelSpec, wanted: tuple[str, ...] | None = None) -> Zygote:
    """A zygote for a whole batch, importing in the background from now on (`wanted`: which of `PRELOAD_OPTIONAL`
    its kernels need, all if None), or the one `prestart_zygote` started for it; pass its address to workers."""
    early = _EARLY.pop((tuple(sorted(base_env(spec).items())), wanted), None)
    if early is not None and early.process is not None and early.process.poll() is None:
        return early
    if early is not None:
        early.close()
    zygote = Zygote(base_env(spec), wanted=wanted)
    zygote.launch()
    return zygote


@atexit.register
def close_zygotes() -> None:
    for zygote in [*_ZYGOTES.values(), *_EARLY.values()]:
        zygote.close()
    _ZYGOTES.clear()
    _EARLY.clear()
