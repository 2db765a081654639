"""Code that runs next to student code: in the grading kernel, and in a student's self-check.

A probe request (grader-made, decoded here with a full unpickler) names an operation on the
student's namespace: a value, or a call of a student function with grader-made arguments. The
answer is reduced to tagged plain data (`to_plain`) that the grader decodes with
`torch.load(weights_only=True)` and a strict decoder, never unpickling student-made objects.

In a grading kernel this module is loaded by the warm process kernels are forked from, before
any student code exists, and `ProbeServer` answers requests in the kernel's main thread from a
socket that only the kernel and the grader hold: no probe code is ever compiled or executed in
the student's namespace, and no message handler of the kernel is involved. Student code can
still rewrite anything in its interpreter, so this module keeps its own references (taken at
import) and its own copy of the builtins, and the library guard reports what it sees on a pipe
out of the kernel at the moment it sees it: a report cannot be taken back, only prevented, and
the ways of preventing it are themselves reported (`AuditWatch`).

Standard library and torch only: no imports from the rest of torchgrade.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import linecache
import os
import signal
import struct
import sys
import threading
import time
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MAX_REPR = 300
MAX_DEPTH = 6
TAG = "__tg__"
_IOLOOP_READ = 1  # tornado.ioloop.IOLoop.READ

# Our own references, taken before any student code runs.
_write, _read = os.write, os.read
_pack, _unpack = struct.pack, struct.unpack
_json_dumps, _json_loads = json.dumps, json.loads
_signal, _SIGINT, _default_int_handler = signal.signal, signal.SIGINT, signal.default_int_handler
_getframe = sys._getframe
_setprofile, _getprofile = sys.setprofile, sys.getprofile
_torch_save, _torch_load = torch.save, torch.load
_stack_len, _stack_at = torch._C._len_torch_dispatch_stack, torch._C._get_dispatch_stack_at
_stack_pop = torch._C._pop_torch_dispatch_stack
_perf_counter = time.perf_counter
_sha256 = hashlib.sha256
_enumerate_threads = threading.enumerate
_main_thread = threading.main_thread


# ----------------------------------------------------------------------------- plain data

def type_name(obj):
    cls = type(obj)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def opaque(obj):
    try:
        text = repr(obj)
    except BaseException as exc:  # a student __repr__ may raise anything
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = f"<unrepresentable {type_name(obj)}>"
    return {TAG: "opaque", "type": type_name(obj), "repr": str(text)[:MAX_REPR]}


def plain_tensor(t):
    t = t.detach().as_subclass(torch.Tensor)
    return {TAG: "tensor", "data": t.to("cpu").clone().contiguous(), "device": t.device.type,
            "requires_grad": bool(t.requires_grad)}


def to_plain(obj, depth=0):
    """Reduce a value to tagged plain data: every container the codec decodes carries its tag, so a
    student's dict can never pass for a tensor, a module or anything else."""
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if depth > MAX_DEPTH:
        return opaque(obj)
    if isinstance(obj, torch.Tensor):
        try:
            return plain_tensor(obj)
        except Exception:  # sparse, quantized, meta... tensors cross as what they are, not their values
            return opaque(obj)
    if isinstance(obj, torch.Size):
        return {TAG: "size", "dims": [int(d) for d in obj]}
    if isinstance(obj, torch.nn.Module):
        return plain_module(obj)
    if isinstance(obj, torch.dtype):
        return {TAG: "dtype", "name": str(obj)}
    if isinstance(obj, (bool, int, float, str)):  # subclasses (IntEnum, numpy.float64's float base...)
        return _builtin_value(obj)
    if isinstance(obj, list):
        return [to_plain(x, depth + 1) for x in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(x, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return {TAG: "dict", "items": [[str(k), to_plain(v, depth + 1)] for k, v in obj.items()]}
    module = type(obj).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy

        if isinstance(obj, numpy.ndarray) and obj.dtype.kind in "biuf":
            return {TAG: "ndarray", "data": torch.from_numpy(numpy.ascontiguousarray(obj)).clone()}
        if isinstance(obj, numpy.generic) and obj.dtype.kind in "biuf":
            return _builtin_value(obj.item())
    if (module == "pandas" or module.startswith("pandas.")) and type(obj).__name__ == "DataFrame":
        return {TAG: "dataframe", "columns": [[str(c), to_plain(list(obj[c]), depth + 1)] for c in obj.columns]}
    return opaque(obj)


def _builtin_value(obj):
    for kind in (bool, int, float, str):
        if isinstance(obj, kind):
            return kind(obj)
    return opaque(obj)


def plain_module(module):
    return {
        TAG: "module",
        "type": type_name(module),
        "training": bool(module.training),
        "state": {str(k): v.detach().as_subclass(torch.Tensor).to("cpu").clone()
                  for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)},
        "hooks": hook_counts(module),
        "modules": {str(name): type_name(m) for name, m in module.named_modules()},
        "n_params": int(sum(p.numel() for p in module.parameters())),
        "n_trainable": int(sum(p.numel() for p in module.parameters() if p.requires_grad)),
    }


def hook_counts(module):
    counts = {"forward": 0, "forward_pre": 0, "backward": 0}
    for m in module.modules():
        counts["forward"] += len(m._forward_hooks)
        counts["forward_pre"] += len(m._forward_pre_hooks)
        counts["backward"] += len(m._backward_hooks)
    return counts


# ----------------------------------------------------------------------------- where code comes from

class CodeOrigin:
    """Tells student code (notebook cells, files it wrote) from library code (the Python environment)."""

    def __init__(self, library_roots):
        self.roots = tuple(str(r).rstrip("/") + "/" for r in library_roots if r)

    def is_student(self, frame):
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        if filename.startswith("<"):
            return filename.startswith("<ipython-input")  # <frozen ...>, <string> (generated code)
        return not filename.startswith(self.roots)

    def student_caller(self, frame, through=("contextlib", "functools", "inspect")):
        """The first frame from `frame` upwards that is not plumbing, if it is student code. Plumbing:
        frames of the modules in `through`, or every library frame if `through` is None."""
        while frame is not None and (
                not self.is_student(frame) if through is None
                else frame.f_globals.get("__name__", "").split(".")[0] in through):
            frame = frame.f_back
        return frame if self.is_student(frame) else None

    @staticmethod
    def where(frame):
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        return f"line {frame.f_lineno}: {line[:120]}" if line else f"line {frame.f_lineno}"


def default_origin():
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__),
             os.path.dirname(os.path.dirname(torch.__file__))}
    roots.update(p for p in sysconfig.get_paths().values())
    try:
        roots.update(site.getsitepackages())
    except AttributeError:
        pass
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # torchgrade itself
    return CodeOrigin(sorted({os.path.realpath(r) for r in roots} | roots))


# ----------------------------------------------------------------------------- the library guard

class ListSink:
    """Self-check: what the guard saw, kept in the student's own process."""

    def __init__(self):
        self.events = []

    def __call__(self, kind, detail):
        if (kind, detail) not in self.events:
            self.events.append((kind, detail))


class PipeSink:
    """Grading: each event leaves the kernel at once, one line on the integrity pipe."""

    def __init__(self, fd):
        self.fd = fd

    def __call__(self, kind, detail):
        text = " ".join(str(detail).split())[:400]
        try:
            _write(self.fd, f"{kind} {text}\n".encode("utf-8", "replace"))
        except OSError:
            pass  # a closed pipe is noticed by the grader


class ForbiddenOps(TorchDispatchMode):
    """Reports every aten operator whose name contains a forbidden fragment.

    Works at the dispatcher, below every alias a student might hold (`F.conv2d`, `nn.Conv2d`,
    `torch.conv2d`, a saved reference to any of them), since all of them end up here.
    """

    def __init__(self, fragments, report):
        super().__init__()
        self.fragments = tuple(fragments)
        self.report = report
        self.seen = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        hit = self.seen.get(func)
        if hit is None:  # once per operator and guard: which fragment it matches, if any
            name = str(func.overloadpacket.__name__)
            hit = self.seen[func] = name if any(fragment in name for fragment in self.fragments) else ""
        if hit:
            self.report("O", hit)
        return func(*args, **(kwargs or {}))


class CallWatch:
    """A profile hook while a guarded call runs: calls of forbidden Python functions (scipy.signal),
    and student code reaching into the dispatch-mode machinery the guard relies on."""

    GUARD_MODULES = ("torch.utils._python_dispatch",)

    def __init__(self, modules, names, report, origin):
        self.modules, self.names = tuple(modules), tuple(names)
        self.report, self.origin = report, origin
        self.previous = None

    def _watch(self, frame, event, arg):
        # The hot path of every guarded call: no attribute that raises an audit event (frame.f_code) here.
        if event == "call":
            module = frame.f_globals.get("__name__") or ""
            if not (module.startswith(self.GUARD_MODULES) or (self.modules and module.startswith(self.modules))):
                return
            name, caller = frame.f_code.co_name, frame.f_back
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            if module != "torch._C" and not (self.modules and module.startswith(self.modules)):
                return
            name, caller = getattr(arg, "__name__", ""), frame
        else:
            return
        if self.modules and module.startswith(self.modules) and (not self.names or any(n in name for n in self.names)):
            self.report("P", f"{module}.{name}")
        if module.startswith(self.GUARD_MODULES) or (module == "torch._C" and "dispatch" in name.lower()):
            student = self.origin.student_caller(caller)
            if student is not None:
                self.report("T", f"reached the library guard's machinery ({module}.{name}) at "
                                 f"{self.origin.where(student)}")

    def __enter__(self):
        self.previous = _getprofile()
        _setprofile(self._watch)
        return self

    def __exit__(self, *exc):
        if _getprofile() != self._watch:
            self.report("T", "the library guard's profile hook was replaced during the call")
        try:
            _setprofile(self.previous)
        except TypeError:  # a profiler that is not a Python callable (cProfile) cannot be put back
            _setprofile(None)
        return False


class Guard:
    """Everything a call with `forbid` runs under, from the call to the conversion of its result.

    The dispatch mode always; the profile hook (which costs as much again) when a forbidden Python module
    is loaded, or when there is a reason to watch for tampering: the grader asked for it (`watch`, from
    what it read in the notebook's source) or the audit hook saw the notebook run code built at run time.
    """

    active = False  # read by AuditWatch: is a guarded call running?

    def __init__(self, forbid, report, origin):
        self.forbid, self.report, self.origin = forbid or {}, report, origin
        self.ops = ForbiddenOps(self.forbid.get("ops", ()), report)
        modules = tuple(self.forbid.get("modules", ()))
        self.watch = None
        if self.forbid.get("watch") or AuditWatch.suspicious or any(m in sys.modules for m in modules):
            self.watch = CallWatch(modules, self.forbid.get("names", ()), report, origin)
        self.depth = 0

    def __enter__(self):
        if not self.forbid:
            return self
        self.concurrent_work()
        if self.watch is not None:
            self.watch.__enter__()
        depth = _stack_len()
        self.ops.__enter__()
        self.depth = _stack_len()
        if self.depth != depth + 1 or _stack_at(self.depth - 1) is not self.ops:
            self.report("T", "the library guard could not be installed (the dispatch-mode stack was tampered with)")
        Guard.active = True
        return self

    def __exit__(self, *exc):
        if not self.forbid:
            return False
        Guard.active = False
        intact = _stack_len() == self.depth and _stack_at(self.depth - 1) is self.ops
        if not intact:
            self.report("T", "the library guard was removed during the call")
        try:
            if intact:
                self.ops.__exit__(*exc)
            else:  # pop down to the guard if it is still there, so no later call runs under it
                while _stack_len() and any(_stack_at(i) is self.ops for i in range(_stack_len())):
                    _stack_pop()
        except Exception:
            pass
        finally:
            if self.watch is not None:
                self.watch.__exit__(*exc)
        return False

    def concurrent_work(self):
        """Threads the notebook started, or live child processes, could compute outside the guard: reported
        for the instructor (a DataLoader's workers are innocent), not held against the call."""
        for thread in _enumerate_threads():
            target = getattr(thread, "_target", None) or getattr(type(thread), "run", None)
            code = getattr(target, "__code__", None)
            if code is not None and self.origin.is_student(_FakeFrame(code)) and thread.is_alive():
                self.report("A", f"concurrency: a thread started by the notebook ({thread.name}) ran during a "
                                 "guarded call")
        try:
            children = [c for t in os.listdir("/proc/self/task")
                        for c in open(f"/proc/self/task/{t}/children").read().split()]
            live = [c for c in children if open(f"/proc/{c}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        except OSError:
            live = []
        if live:
            self.report("A", f"concurrency: {len(live)} process(es) started by the notebook ran during a guarded call")


class _FakeFrame:
    def __init__(self, code):
        self.f_code = code


class ProbeFault(Exception):
    """The probe itself failed before the student's code ran (the request, its arguments, eval()): the grader's
    fault, reported as such, never as the student's function failing."""


def guarded_call(fn, args, kwargs):
    """Call `fn`; returns (value, error, seconds). The student's exception is data for the check."""
    start = _perf_counter()
    try:
        value, error = fn(*args, **kwargs), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        value, error = None, format_error(exc)
    return value, error, _perf_counter() - start


def format_error(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "ipykernel_" in frame.filename or frame.filename.startswith("<ipython"):
            where = f" (in your code, line {frame.lineno}: {frame.line.strip()})" if frame.line else f" (line {frame.lineno})"
            break
    try:
        text = str(exc)
    except BaseException:
        text = "<unprintable>"
    return f"{type_name(exc)}: {text[:1000]}{where}"


# ----------------------------------------------------------------------------- answering a request

def resolve(namespace, target):
    """Look up a dotted name (`model`, `model.fc`, `EarlyStopping`) in the student's namespace."""
    head, *rest = target.split(".")
    if head not in namespace:
        raise NameError(f"name {head!r} is not defined")
    obj = namespace[head]
    for part in rest:
        obj = getattr(obj, part)
    return obj


def materialise(obj, namespace, device):
    """Replace {"__ref__": name} markers by student objects; move tensors and modules to `device`."""
    if isinstance(obj, dict) and set(obj) == {"__ref__"}:
        return resolve(namespace, obj["__ref__"])
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return obj.to(device) if device else obj
    if isinstance(obj, list):
        return [materialise(x, namespace, device) for x in obj]
    if isinstance(obj, tuple):
        return tuple(materialise(x, namespace, device) for x in obj)
    if isinstance(obj, dict):
        return {k: materialise(v, namespace, device) for k, v in obj.items()}
    return obj


def response(missing=False, error=None, value=None, type=None, seconds=0.0, **extra):
    return {TAG: "response", "missing": missing, "error": error, "value": value, "type": type,
            "seconds": float(seconds), **extra}


def answer(request, namespace, report, origin):
    """Carry out one probe request against `namespace`; always returns a plain response."""
    try:
        obj = resolve(namespace, request["target"])
    except Exception as exc:  # a missing name is an answer, not a failure
        return response(missing=True, error=format_error(exc))
    with Guard(request.get("forbid"), report, origin):
        if request["op"] == "value":
            return response(value=to_plain(obj), type=type_name(obj))
        device = request.get("device")
        if device == "model":  # the student's trained model decides where inputs go
            device = module_device(obj)
        was_training = obj.training if isinstance(obj, torch.nn.Module) else None
        if request.get("eval_mode") and was_training is not None:
            try:
                obj.eval()
            except Exception as exc:
                raise ProbeFault(f"eval() of {request['target']} failed ({format_error(exc)})") from None
        try:
            return call_and_answer(obj, request, namespace, device)
        finally:  # the student's model keeps its mode (a self-check runs in the student's own process)
            if was_training is not None:
                obj.train(was_training)


def call_and_answer(obj, request, namespace, device):
    try:
        args = materialise(request.get("args", ()), namespace, device)
        kwargs = materialise(request.get("kwargs", {}), namespace, device)
    except NameError as exc:  # `ref(name)` of a name the student did not define: the student's answer
        return response(missing=True, error=format_error(exc))
    except Exception as exc:
        raise ProbeFault(f"the grader's arguments could not be prepared ({format_error(exc)})") from None
    seed = request.get("seed")
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    grad = torch.no_grad() if request.get("no_grad") else contextlib.nullcontext()
    with rng, grad:
        if seed is not None:
            torch.manual_seed(seed)
        value, error, seconds = guarded_call(obj, args, kwargs)
        then = request.get("then")
        if then and error is None:  # calls on what the first call returned: obj(...).step(x), ...
            made, results = value, []
            for method, m_args, m_kwargs in then:
                fn = made if method is None else getattr(made, method, None)
                if fn is None:
                    error = f"AttributeError: {type_name(made)} has no method {method!r}"
                    break
                result, error, more = guarded_call(fn, materialise(m_args, namespace, device),
                                                   materialise(m_kwargs, namespace, device))
                seconds += more
                if error is not None:
                    break
                results.append(result)
            value = results
        extra = {"args": to_plain(args)} if request.get("return_args") else {}
        return response(error=error, value=to_plain(value), seconds=seconds,
                        type=type_name(value) if error is None else None, **extra)


def module_device(obj):
    if isinstance(obj, torch.nn.Module):
        for tensor in obj.parameters():
            return tensor.device
        for tensor in obj.buffers():
            return tensor.device
    return None


# ----------------------------------------------------------------------------- inside a grading kernel

class AuditWatch:
    """An audit hook (it cannot be removed once added): reports, from student code, what taking the
    grader apart would need: reaching call frames during a guarded call, walking the heap, native
    code, signals, network, other processes' /proc entries, namespace tools."""

    ALWAYS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames", "exec",
                        "compile", "pickle.find_class", "marshal.loads",
                        "os.kill", "os.killpg", "signal.pthread_kill", "socket.connect", "socket.bind",
                        "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                        "os.spawn", "open", "os.listdir", "os.scandir"})
    DURING_CALLS = frozenset({"sys._getframe", "object.__getattr__", "sys.setprofile", "sys.settrace", "os.fork",
                              "os.forkpty"})
    FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    ESCAPE_TOOLS = frozenset({"unshare", "nsenter", "mount", "umount", "gdb", "strace", "ltrace", "kill", "pkill",
                              "killall", "setsid", "nohup", "bwrap", "sudo", "su", "chroot", "capsh", "setpriv",
                              "ptrace", "ip", "iptables", "docker"})

    suspicious = False  # the notebook ran code it built at run time: guarded calls are watched closely

    def __init__(self, report, origin):
        self.report, self.origin = report, origin
        self.busy = False

    def __call__(self, event, args):
        if event == "object.__getattr__":  # the most frequent event by far: decide on the spot
            if not Guard.active or len(args) < 2 or args[1] not in self.FRAME_ATTRS:
                return
        elif (event not in self.ALWAYS and event not in self.DURING_CALLS and not event.startswith("ctypes.")) \
                or self.busy:
            return
        self.busy = True
        try:
            self.check(event, args, _getframe(2))
        except Exception:
            pass
        finally:
            self.busy = False

    def check(self, event, args, frame):
        if event in self.DURING_CALLS:
            if not Guard.active:
                return
            if event == "object.__getattr__" and (len(args) < 2 or args[1] not in self.FRAME_ATTRS):
                return
            if event.startswith("os.fork"):
                self.report("T", "forked a process during a guarded call")
                return
            student = self.origin.student_caller(frame)
            if student is not None:
                detail = args[1] if event == "object.__getattr__" else event
                self.report("T", f"reached the grader's call frames or hooks ({detail}) during a guarded call "
                                 f"at {self.origin.where(student)}")
            return
        what = self.what(event, args)  # decided from the event alone first: frames are walked only when it matters
        if what is None:
            return
        if event in self.PATHS or event in self.PROGRAMS:
            student = self.origin.student_caller(frame, through=None)  # the path or program says what it is
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            student = self.origin.student_caller(frame, through=("os", "signal", "subprocess"))
        else:
            student = self.origin.student_caller(frame)
        if student is None:
            return
        if what.startswith(("introspection", "dynamic code", "native code")):
            AuditWatch.suspicious = True
        self.report("A", f"{what} at {self.origin.where(student)}")

    PATHS = frozenset({"open", "os.listdir", "os.scandir"})
    PROGRAMS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"})

    def what(self, event, args):
        """What an event means, if it is worth reporting: `category: detail`."""
        if event.startswith("gc.") or event == "sys._current_frames":
            return f"introspection: {event}"
        if event in ("exec", "compile", "pickle.find_class", "marshal.loads"):
            return f"dynamic code: {event}"
        if event.startswith("ctypes."):
            return f"native code: {event}"
        if event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            return f"signals: {event}{tuple(args)!r}"
        if event.startswith("socket."):
            return f"network: {event}"
        if event in self.PATHS:
            path = args[0] if args else None
            if isinstance(path, bytes):
                path = path.decode("utf-8", "replace")
            return f"processes: {event} {path}" if isinstance(path, str) and self.snooping(path) else None
        program = args[0] if args else ""
        if isinstance(program, (list, tuple)):
            program = program[0] if program else ""
        if event == "os.system" and isinstance(program, str):
            program = program.split()[0] if program.split() else ""
        name = os.path.basename(os.fsdecode(program)) if isinstance(program, (str, bytes, os.PathLike)) else ""
        return f"escape: runs {name}" if name in self.ESCAPE_TOOLS else None

    @staticmethod
    def snooping(path):
        """Another process's /proc entry, or the kernel's own open files (hunting for the grader's pipes)."""
        if not path.startswith("/proc"):
            return False
        parts = path.rstrip("/").split("/")
        if len(parts) < 3:
            return path.rstrip("/") == "/proc"
        entry = parts[2]
        if entry.isdigit() and int(entry) != os.getpid():
            return True
        return entry in ("self", "thread-self", str(os.getpid())) and len(parts) > 3 and parts[3] in ("fd", "fdinfo",
                                                                                                      "mem", "environ")


class StateWatch:
    """Compares what the grader relies on in the kernel with what was there before the notebook ran."""

    def __init__(self, report):
        self.report = report
        self.seen = set()
        self.genuine = self.current()

    @staticmethod
    def current():
        import torch.utils._python_dispatch as python_dispatch

        return {
            "torch.save": getattr(torch, "save", None), "torch.load": getattr(torch, "load", None),
            "TorchDispatchMode": getattr(python_dispatch, "TorchDispatchMode", None),
            "_disable_current_modes": getattr(python_dispatch, "_disable_current_modes", None),
            "builtins.compile": getattr(builtins, "compile", None), "builtins.exec": getattr(builtins, "exec", None),
            "builtins.isinstance": getattr(builtins, "isinstance", None),
            "builtins.getattr": getattr(builtins, "getattr", None),
            "sys.setprofile": getattr(sys, "setprofile", None), "os.write": getattr(os, "write", None),
        }

    def scan(self):
        for name, value in self.current().items():
            if value is not self.genuine[name] and name not in self.seen:
                self.seen.add(name)
                self.report("S", f"the notebook replaced {name}")


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
                request = _torch_load(io.BytesIO(payload), weights_only=False)
            except BaseException as exc:
                raise ProbeFault(f"the grader's request could not be read ({format_error(exc)})") from None
            data = self.encode(answer(request, self.user_ns, self.report, self.origin))
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
        buffer = io.BytesIO()
        _torch_save(plain, buffer)
        return buffer.getvalue()


def serve(kernel, integrity_fd, probe_fd, origin):
    """Install the probe server and the audit hook in a fresh grading kernel, before its first cell."""
    report = PipeSink(integrity_fd)
    server = ProbeServer(probe_fd, kernel.shell.user_ns, report, origin)
    _ioloop_current().add_handler(probe_fd, server.on_readable, _IOLOOP_READ)
    sys.addaudithook(AuditWatch(report, origin))
    return server


def _ioloop_current():
    from tornado.ioloop import IOLoop

    return IOLoop.current()


def warm_up(origin):
    """Run the library guard once over common operators, in the zygote, before any kernel is forked: the
    first use of a dispatch mode in a process costs about a second, which no submission should pay."""
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
    to_plain([x, {"a": w}, torch.Size([1]), torch.float32])


def load_private():
    """This module executed once more, in a namespace of its own with its own copy of the builtins: what
    a grading kernel runs, so that rebinding builtins or module attributes in the notebook reaches none
    of it, and no `import` in the notebook returns it."""
    namespace = {"__builtins__": dict(vars(builtins)), "__name__": "torchgrade_probe", "__file__": __file__}
    with open(__file__, encoding="utf-8") as f:
        exec(compile(f.read(), __file__, "exec"), namespace)
    return namespace
