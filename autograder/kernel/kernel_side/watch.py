"""Watching the kernel from inside: an audit hook that reports what taking the grader apart would need, and a
watch over the state the grader relies on."""

from __future__ import annotations

import builtins
import os
import sys

import torch
from .refs import Flags, _getframe
from .guard import Guard

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

    def __init__(self, report, origin):
        self.report, self.origin = report, origin
        self.busy = False

    SPAWNS = frozenset({"os.fork", "os.forkpty", "subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn"})

    def __call__(self, event, args):
        if event in self.SPAWNS:  # whoever started it (a DataLoader too): from now on guarded calls look for children
            Flags.children = True
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
            Flags.suspicious = True
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
