"""The library guard: forbidden operators and functions reported, while a student's call runs, on a pipe out of the
kernel at the moment they are seen."""

from __future__ import annotations

import os
import sys
import traceback

from torch.utils._python_dispatch import TorchDispatchMode
from .refs import _enumerate_threads, _get_ident, _getframe, _getprofile, _perf_counter, _setprofile, _stack_at, _stack_len, _stack_pop, _write
from .plain import type_name
from .refs import Flags, _current_frames, _json_load, _observer_add, _observer_disable, _observer_enable, _observer_remove, _unlink

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

    @classmethod
    def _should_skip_dynamo(cls):  # no torch._disable_dynamo wrapper around every operator: a seventh of its cost
        return False

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


class Observer:
    """The process-wide operator observer: PyTorch's execution-trace observer, a global RecordFunction callback
    that sees every aten operator on every thread, inside custom operators and whatever the dispatch keys (the
    dispatch mode sees only its own thread, and not what a custom operator's kernel or an excluded Python key
    runs). It costs about a hundred times the dispatch mode, so a guarded call uses it only once the notebook
    has touched a way around the dispatch mode (`Tripwires`), or threads other than the kernel's own run."""

    def __init__(self, fragments, report, folder):
        self.fragments, self.report = tuple(fragments), report
        self.path = os.path.join(folder or "/tmp", f".torchgrade-ops-{os.getpid()}-{id(self)}.json")
        self.on = False

    def start(self):
        if self.on:
            return True
        if _observer_add is None or not _observer_add(self.path):
            self.report("T", "the process-wide operator observer is not available: a call that may compute on "
                             "another thread or below the dispatch mode cannot be checked")
            return False
        _observer_enable()
        self.on = True
        return True

    def stop(self):
        if not self.on:
            return
        self.on = False
        try:
            _observer_disable()
            _observer_remove()
            with open(self.path, encoding="utf-8") as f:
                names = {str(node.get("name", "")) for node in _json_load(f).get("nodes", ())}
        except Exception as exc:
            self.report("T", f"the operator observer's record could not be read ({type_name(exc)})")
            return
        finally:
            try:
                _unlink(self.path)
            except OSError:
                pass
        for name in sorted(names):
            op = name.split("::", 1)[-1].split(".", 1)[0]
            if name.startswith("aten::") and any(fragment in op for fragment in self.fragments):
                self.report("O", op)


class Guard:
    """Everything a call with `forbid` runs under, from the call to the conversion of its result.

    The dispatch mode always; the profile hook (which costs as much again) when a forbidden Python module
    is loaded, or when there is a reason to watch for tampering: the grader asked for it (`watch`, from
    what it read in the notebook's source) or the audit hook saw the notebook run code built at run time.
    The process-wide operator observer (`Observer`) once the notebook touched a way around the dispatch
    mode (threads, custom operators, dispatch keys: `Flags.bypass`, set by `Tripwires`), or when other Python
    threads run; and from the moment such a way is touched during the call itself.
    """

    active = False  # read by AuditWatch: is a guarded call running?
    current = None  # the guard of the call running now, for the tripwires

    def __init__(self, forbid, report, origin):
        self.forbid, self.report, self.origin = forbid or {}, report, origin
        self.ops = ForbiddenOps(self.forbid.get("ops", ()), report)
        self.observer = Observer(self.forbid.get("ops", ()), report, os.environ.get("TMPDIR"))
        modules = tuple(self.forbid.get("modules", ()))
        self.watch = None
        if self.forbid.get("watch") or Flags.suspicious or any(m in sys.modules for m in modules):
            self.watch = CallWatch(modules, self.forbid.get("names", ()), report, origin)
        self.depth = 0

    def __enter__(self):
        if not self.forbid:
            return self
        self.concurrent_work()
        if Flags.bypass or self.student_threads():
            self.observe()
        if self.watch is not None:
            self.watch.__enter__()
        depth = _stack_len()
        self.ops.__enter__()
        self.depth = _stack_len()
        if self.depth != depth + 1 or _stack_at(self.depth - 1) is not self.ops:
            self.report("T", "the library guard could not be installed (the dispatch-mode stack was tampered with)")
        Guard.active, Guard.current = True, self
        return self

    def student_threads(self):
        """Whether a thread other than the kernel's own (and the call's) is running the notebook's code as the call
        starts (one started where no tripwire saw it); the kernel's own threads sit in library code and cost
        nothing. In a self-check no thread was registered as the kernel's: the call's own thread is the cell's."""
        caller = _get_ident()  # the call's own thread: its operators reach the dispatch mode
        for ident, frame in _current_frames().items():
            if ident in Flags.threads or ident == caller:
                continue
            for _ in range(256):
                if frame is None:
                    break
                if self.origin.is_student(frame):
                    return True
                frame = frame.f_back
        return False

    def observe(self):
        """From now until the call ends, every operator on every thread is seen."""
        if self.forbid.get("ops"):
            self.observer.start()

    def __exit__(self, *exc):
        if not self.forbid:
            return False
        Guard.active, Guard.current = False, None
        self.observer.stop()
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
        for the instructor (a DataLoader's workers are innocent), not held against the call. Children are looked
        for (a read of /proc per thread) once the audit hook saw a process start, or native code loaded."""
        for thread in _enumerate_threads():
            target = getattr(thread, "_target", None) or getattr(type(thread), "run", None)
            code = getattr(target, "__code__", None)
            if code is not None and self.origin.is_student(_FakeFrame(code)) and thread.is_alive():
                self.report("A", f"concurrency: a thread started by the notebook ({thread.name}) ran during a "
                                 "guarded call")
        if not (Flags.children or Flags.suspicious or Flags.bypass):
            return
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


class Tripwires:
    """What a notebook could use to compute outside the dispatch mode's sight, wrapped before its first cell:
    starting threads, defining custom operators, excluding dispatch keys or taking modes off the stack, and
    turning the operator observer off. Used from student code, each marks the kernel (`Flags.bypass`: every
    later guarded call is observed process-wide), says so to the grader once (a finding), and, in the middle
    of a guarded call, turns the observer on for the rest of it before going ahead."""

    TARGETS = (
        ("threading", "Thread.start", "concurrency", "started a thread"),
        ("_thread", "start_new_thread", "concurrency", "started a thread"),
        ("_thread", "start_joinable_thread", "concurrency", "started a thread"),
        ("torch.library", "custom_op", "custom-op", "defined a custom operator"),
        ("torch._library.custom_ops", "custom_op", "custom-op", "defined a custom operator"),
        ("torch.library", "Library", "custom-op", "defined an operator library"),
        ("torch._C", "_ExcludeDispatchKeyGuard", "dispatch-keys", "excluded dispatch keys"),
        ("torch._C", "_DisableTorchDispatch", "dispatch-keys", "disabled torch dispatch"),
        ("torch._C", "_pop_torch_dispatch_stack", "dispatch-keys", "took a mode off the dispatch stack"),
        ("torch._C", "_set_dispatch_mode", "dispatch-keys", "set a dispatch mode"),
        ("torch._C._profiler", "_disable_execution_trace_observer", "dispatch-keys", "turned the operator observer off"),
        ("torch._C._profiler", "_remove_execution_trace_observer", "dispatch-keys", "removed the operator observer"),
    )

    def __init__(self, report, origin):
        self.report, self.origin, self.said = report, origin, set()

    def install(self):
        for module_name, attribute, kind, what in self.TARGETS:
            module = sys.modules.get(module_name)
            owner_name, _, name = attribute.rpartition(".")
            owner = getattr(module, owner_name) if module is not None and owner_name else module
            original = getattr(owner, name, None) if owner is not None else None
            if original is None:
                continue
            try:
                setattr(owner, name, self.wrap(original, kind, f"{what} ({module_name}.{attribute})"))
            except (AttributeError, TypeError):
                pass

    def wrap(self, original, kind, what):
        tripped = self.tripped

        def tripwire(*args, **kwargs):
            tripped(kind, what)
            return original(*args, **kwargs)

        tripwire.__name__ = getattr(original, "__name__", "tripwire")
        tripwire.__qualname__ = getattr(original, "__qualname__", tripwire.__name__)
        tripwire.__doc__ = getattr(original, "__doc__", None)
        tripwire.__wrapped_by_torchgrade__ = True
        return tripwire

    PLUMBING = ("contextlib", "functools", "inspect", "threading", "concurrent", "_thread", "multiprocessing")

    def tripped(self, kind, what):
        # the notebook's own doing (through thread pools and context managers), not a library's inner workings
        frame = self.origin.student_caller(_getframe(2), through=self.PLUMBING)
        if frame is None:
            return
        Flags.bypass = True
        if Guard.current is not None:
            Guard.current.observe()
        if what not in self.said:
            self.said.add(what)
            self.report("A", f"{kind}: the notebook {what} at {self.origin.where(frame)}")
