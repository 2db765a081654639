"""The probe server of a grading kernel: length-prefixed frames on a socket only the grader and this kernel hold,
answered in the kernel's main thread."""

from __future__ import annotations

import sys

import torch
from .refs import Flags, OP_KEY, _get_ident, _include_key, _IOLOOP_READ, _SIGINT, _default_int_handler, _json_dumps, _json_loads, _pack, _read, _sha256, _signal, _unpack, _write
from .wire import TooLarge, answer_decode, answer_encode, wire_decode
from .plain import to_plain
from .watch import AuditWatch, StateWatch
from .guard import Guard, ListSink, PipeSink, ProbeFault, Tripwires, format_error
from .answer import answer, response

def read_exact(fd, n):
    chunks, left = [], n
    while left:
        chunk = _read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the probe channel closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    """One frame of the probe channel: a JSON header and a payload, each behind its length."""
    head, size = _unpack("!II", read_exact(fd, 8))
    return _json_loads(read_exact(fd, head)), read_exact(fd, size)


def write_frame(fd, header, payload):
    head = _json_dumps(header).encode()
    data = memoryview(_pack("!II", len(head), len(payload)) + head + payload)
    while data:
        data = data[_write(fd, data):]


class _Discard:
    """Where a probed call's prints go: output is not part of an answer."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


class ProbeServer:
    """Answers the grader's probe requests, in the kernel's main thread, from a socket only it holds."""

    def __init__(self, fd, user_ns, report, origin):
        self.fd, self.user_ns, self.report, self.origin = fd, user_ns, report, origin
        self.state = StateWatch(report)

    def on_readable(self, fd, events=None):
        try:
            header, payload = read_frame(fd)
        except (EOFError, OSError, ValueError):
            _ioloop_current().remove_handler(fd)
            return
        call_id = str(header.get("id", ""))[:64]
        guarded = bool(header.get("guarded"))
        status, data = self.answer(payload, call_id, guarded, header.get("limit"))
        try:
            self.state.scan()
        except Exception:
            pass
        write_frame(fd, {"id": call_id, "status": status}, data)

    def answer(self, payload, call_id, guarded, limit=None):
        previous = _signal(_SIGINT, _default_int_handler)  # an interrupt stops the call, not the kernel
        out, err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = _Discard()
        status, data = "ok", b""
        try:
            if guarded:
                self.report("B", call_id)
            try:
                request = wire_decode(payload)
            except BaseException as exc:
                raise ProbeFault(f"the grader's request could not be read ({format_error(exc)})") from None
            try:
                data = self.encode(answer(request, self.user_ns, self.report, self.origin))
            except TooLarge as exc:  # the student's value: the answer to its call, as an oversized one is below
                data = self.encode(response(error=f"returned {exc}"))
            if isinstance(limit, int) and len(data) > limit:  # refused here: the answer never crosses
                data = self.encode(response(error=f"returned a value of {len(data) / 2**20:.0f} MiB, over the "
                                                  f"{limit / 2**20:g} MiB limit on what one answer may carry"))
        except KeyboardInterrupt:
            status = "interrupted"
        except BaseException as exc:  # the probe's own failure: the grader's, never billed to the student
            status = "error"
            try:
                data = self.encode(response(error=f"probe failed: {format_error(exc)}", fault=True))
            except BaseException:
                data = b""
        finally:
            sys.stdout, sys.stderr = out, err
            _signal(_SIGINT, previous)
        if guarded:
            self.report("E", f"{call_id} {_sha256(data).hexdigest()}")
        return status, data

    @staticmethod
    def encode(plain):
        return answer_encode(plain)


def serve(kernel, integrity_fd, probe_fd, origin):
    """Install the probe server and the audit hook in a fresh grading kernel, before its first cell."""
    report = PipeSink(integrity_fd)
    server = ProbeServer(probe_fd, kernel.shell.user_ns, report, origin)
    _ioloop_current().add_handler(probe_fd, server.on_readable, _IOLOOP_READ)
    sys.addaudithook(AuditWatch(report, origin))
    Tripwires(report, origin).install()
    forget_grader_modules()
    start_zmq_collector()
    Flags.threads = frozenset(sys._current_frames())
    key_on_kernel_threads(kernel)
    return server


def start_zmq_collector():
    """ZeroMQ's garbage collector thread (dropping what zero-copy sends held), which it would start later, when it
    first needs it: started now, before the first cell, so that it is among the kernel's own threads. (Started later,
    it would put every guarded call under the observer.)"""
    try:
        from zmq.utils.garbage import gc

        if not gc.is_alive():
            gc.start()
    except Exception:  # another pyzmq: calls are observed once it starts, which costs time, not correctness
        pass


def key_on_zmq_collector(include):
    """ZeroMQ's garbage collector thread runs Python only to drop what zero-copy sends held, which runs their
    finalizers there: a notebook's object sent so runs its `__del__` on that thread. The key is included there too, by
    the finalizer of an object of the kernel's own, dropped there the same way."""
    try:
        import struct

        from zmq.utils.garbage import gc

        class Dropped:
            def __del__(self):
                include()

        key = gc.store(Dropped())
        gc._push_socket.send(struct.pack("Q", key))  # what libzmq sends once it is done with a buffer
    except Exception:  # another pyzmq: work handed to that thread is still seen by the operators' second line
        pass


def key_on_kernel_threads(kernel):
    """The guard's key included, for good, on the kernel's own threads that run Python for their event loops (IOPub,
    control, shell channel): a notebook may hand any of them work (`pub_thread.schedule`, a loop's `add_callback`)
    that then computes while a guarded call runs, and the key sees it there too. (Outside a guarded call the key's
    kernels hand every operator on.) Excluding it there again is a tripwire, as everywhere."""
    def include():
        _include_key(OP_KEY, True)
        Flags.loop_threads.add(_get_ident())  # (one started after `Flags.threads` was taken: its own word)

    key_on_zmq_collector(include)
    for name in ("iopub_thread", "control_thread", "shell_channel_thread"):
        thread = getattr(kernel, name, None)
        try:
            if name == "iopub_thread":
                thread.schedule(include)
            elif thread is not None:
                thread.io_loop.add_callback(include)
        except Exception:  # another ipykernel: its threads are as they are (the observer still watches others)
            pass


def forget_grader_modules():
    """The copy of this package the zygote imported normally goes from `sys.modules` (and from its parent package):
    it holds references taken before the tripwires were set, which a notebook's `import` would otherwise be handed.
    (A copy the notebook imports now takes the tripwires, and its calls through them count as the notebook's.)"""
    package = "autograder.kernel.kernel_side"
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    parent = sys.modules.get("autograder.kernel")
    if parent is not None and "kernel_side" in vars(parent):
        delattr(parent, "kernel_side")


def _ioloop_current():
    from tornado.ioloop import IOLoop

    return IOLoop.current()


def warm_up(origin):
    """Run the library guard once over common operators, in the zygote, before any kernel is forked: the first
    guarded call in a process looks up every operator's name (and the first calls of these operators are slower),
    which no submission should pay."""
    x = torch.randn(1, 2, 6, 6)
    w = torch.randn(2, 2, 3, 3)
    forbid = {"ops": ("no-such-operator",), "modules": ("no_such_module",), "names": ("none",)}
    with Guard(forbid, ListSink(), origin):
        y = torch.nn.functional.conv2d(x, w, padding=1) + x[:, :1] * 2.0 - 1
        y = torch.nn.functional.max_pool2d(torch.relu(y), 2).flatten(1)
        z = (y @ y.T).softmax(dim=1).argmax(dim=1)
        torch.stack([x.sum(dim=(2, 3)), x.mean(dim=(2, 3))]).std(dim=0).sqrt().clamp(0, 1)
        torch.cat([x, torch.zeros_like(x)], dim=1).permute(0, 2, 3, 1).reshape(-1).unfold(0, 4, 2).max()
        torch.nn.functional.pad(x, (1, 1, 1, 1)).flip(-1)[..., 1:-1, 1:-1].abs().pow(2).where(x > 0, x).float()
        torch.tensor([1.0, 2.0]).to(torch.float64).sum().item(), torch.arange(4).view(2, 2).t().contiguous(), z.tolist()
        torch.nn.functional.cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]))
        torch.linspace(0, 1, 5).exp().log1p().mul_(2).add_(1).div(3).floor().eq(0).any()
    answer_decode(answer_encode(to_plain([x, {"a": w}, torch.Size([1]), torch.float32, (1.5, float("nan"))])))
