"""What a submission did to the grader: from its source, from inside its kernel, from its sandbox.

Findings never change points by themselves (the library guard's own findings fail the call they
happened in); they are listed for the instructor: the gradebook's `flags` column, `flags` in the
results' `extra_data`, a line each in the feedback.

- `scan_source`: the notebook's code, read as Python (IPython magics and shell escapes
  translated), for what taking the grader apart needs: call frames, the heap, the dispatch-mode
  machinery, native code, the grader's own functions replaced, other processes, namespace tools.
- `IntegrityChannel`: the pipe out of the kernel. The kernel's audit hook and library guard write
  a line the moment they see something; a drain thread keeps every line, so a report cannot be
  taken back by the code it reports on.
"""

from __future__ import annotations

import ast
import os
import re
import select
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Iterable

import nbformat

MAX_LINES = 5000


@dataclass(frozen=True)
class Finding:
    kind: str  # e.g. guard-tampered, introspection, grader-patched, detached-processes
    origin: str  # source | kernel | sandbox
    detail: str

    def line(self) -> str:
        return f"{self.kind} ({self.origin}): {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "origin": self.origin, "detail": self.detail}


# ----------------------------------------------------------------------------- the notebook's source

ATTRIBUTES = {
    "_getframe": ("frames", "reads call frames (sys._getframe)"),
    "currentframe": ("frames", "reads call frames (inspect.currentframe)"),
    "f_back": ("frames", "walks up call frames (f_back)"),
    "f_locals": ("frames", "reads another frame's locals (f_locals)"),
    "tb_frame": ("frames", "reads frames through a traceback (tb_frame)"),
    "_current_frames": ("frames", "reads every thread's frames (sys._current_frames)"),
    "get_objects": ("introspection", "walks the heap (gc.get_objects)"),
    "get_referrers": ("introspection", "walks the heap (gc.get_referrers)"),
    "get_referents": ("introspection", "walks the heap (gc.get_referents)"),
    "__globals__": ("introspection", "reaches a function's module globals (__globals__)"),
    "__closure__": ("introspection", "reaches a function's closure (__closure__)"),
    "cell_contents": ("introspection", "rewrites a closure (cell_contents)"),
    "setprofile": ("guard-tampered", "replaces the profile hook (sys.setprofile)"),
    "settrace": ("guard-tampered", "replaces the trace hook (sys.settrace)"),
    "getprofile": ("guard-tampered", "reads the profile hook (sys.getprofile)"),
    "_disable_current_modes": ("guard-tampered", "disables dispatch modes (_disable_current_modes)"),
    "_pop_mode": ("guard-tampered", "pops a dispatch mode"),
    "_pop_mode_temporarily": ("guard-tampered", "pops a dispatch mode"),
    "_get_current_dispatch_mode": ("guard-tampered", "reads the active dispatch mode"),
    "_get_current_dispatch_mode_stack": ("guard-tampered", "reads the dispatch-mode stack"),
    "_python_dispatch": ("guard-tampered", "uses torch.utils._python_dispatch"),
    "TorchDispatchMode": ("guard-tampered", "uses TorchDispatchMode"),
    "_DisableTorchDispatch": ("guard-tampered", "disables Python dispatch (_DisableTorchDispatch)"),
    "DisableTorchFunction": ("guard-tampered", "disables __torch_function__ (DisableTorchFunction)"),
    "_pop_torch_dispatch_stack": ("guard-tampered", "pops the dispatch-mode stack"),
    "_unset_dispatch_mode": ("guard-tampered", "unsets a dispatch mode"),
    # the library guard's dispatch key (PreDispatch) and the ways around it
    "PreDispatch": ("guard-tampered", "names the library guard's dispatch key (PreDispatch)"),
    "_EnablePreDispatch": ("guard-tampered", "names the library guard's dispatch key (PreDispatch)"),
    "_dispatch_tls_set_dispatch_key_excluded": ("guard-tampered", "changes the thread's dispatch keys"),
    "_dispatch_tls_set_dispatch_key_included": ("guard-tampered", "changes the thread's dispatch keys"),
    "_ExcludeDispatchKeyGuard": ("guard-tampered", "excludes dispatch keys (_ExcludeDispatchKeyGuard)"),
    "ExcludeDispatchKeyGuard": ("guard-tampered", "excludes dispatch keys (ExcludeDispatchKeyGuard)"),
    "_SetExcludeDispatchKeyGuard": ("guard-tampered", "excludes dispatch keys (_SetExcludeDispatchKeyGuard)"),
    "_ForceDispatchKeyGuard": ("guard-tampered", "sets the thread's dispatch keys (_ForceDispatchKeyGuard)"),
    "_dynamo_restore_local_dispatch_key_set": ("guard-tampered", "sets the thread's dispatch keys"),
    "redispatch": ("guard-tampered", "calls an operator below the dispatcher's top (redispatch)"),
    "redispatch_boxed": ("guard-tampered", "calls an operator below the dispatcher's top (redispatch_boxed)"),
    "call_boxed": ("guard-tampered", "calls an operator's kernel directly (call_boxed)"),
    "_op_dk": ("guard-tampered", "calls an operator's kernel directly (_op_dk)"),
    "_dispatch_call_boxed": ("guard-tampered", "calls an operator's kernel directly (_dispatch_call_boxed)"),
    "_dispatch_get_computed_kernel_for_dispatch_key": ("guard-tampered", "takes an operator's kernel to call it"),
    "_dispatch_library": ("guard-tampered", "registers operator kernels (_dispatch_library)"),
    "_PreserveDispatchKeyGuard": ("guard-tampered", "saves the thread's dispatch keys to restore them"),
    "_IncludeDispatchKeyGuard": ("guard-tampered", "includes dispatch keys (_IncludeDispatchKeyGuard)"),
    "_RestorePythonTLSSnapshot": ("guard-tampered", "restores a dispatch-key snapshot"),
    "_EnablePythonDispatcher": ("guard-tampered", "turns the Python dispatcher on"),
    "enable_python_dispatcher": ("guard-tampered", "turns the Python dispatcher on"),
    "_dispatch_cache": ("guard-tampered", "rewrites an operator's dispatch cache"),
    "shell_handlers": ("grader-patched", "rewires the kernel's message handlers (shell_handlers)"),
    "addaudithook": ("guard-tampered", "adds an audit hook"),
}
MODULES = {
    "ctypes": ("native", "loads native code (ctypes)"),
    "cffi": ("native", "loads native code (cffi)"),
    "torchgrade_probe": ("grader-patched", "imports the grader's probe"),
    "autograder.kernel": ("grader-patched", "imports the grader's kernel code"),
}
STRINGS = {
    re.compile(r"/proc/(\d|self/(fd|mem|environ|ns)|thread-self|[^/\s]*\*|\{)"):
        ("processes", "reads other processes' /proc entries or its own open files"),
    re.compile(r"kernel.*\.json|connection_file"): ("processes", "looks for kernel connection files"),
    re.compile(r"torchgrade"): ("grader-patched", "names the grader"),
    re.compile(r"\b(setns|unshare|nsenter|ptrace|PTRACE_)"): ("escape", "names a namespace or tracing tool"),
}
PATCHED_ROOTS = {"torch", "builtins", "__builtins__", "sys", "os", "io", "pickle", "F", "nn"}
DYNAMIC = {"exec": "runs code built at run time (exec)", "eval": "runs code built at run time (eval)",
           "compile": "compiles code at run time (compile)", "__import__": "imports by a computed name (__import__)"}


# What IPython's cell transforms act on (IPython.core.inputtransformer2, versions 8 and 9), or might: a line break that
# only str.splitlines sees (it splits a cell into lines, Python's tokenizer does not), an indented first line, a
# prompt anywhere (`>>>`, `In [1]:`, `[nav] In [1]:`, `...:` indented or not, `...` in the first column; IPython 8
# strips them where the first two lines hold one, IPython 9 wherever a `>>>` line is outside what it takes for a
# triple-quoted string, dedenting too) and an escape at the start of a line (% ! ? / , ;). An indented `...` with no
# colon after it (an unanswered body, `    ...`) is an Ellipsis to both: a prompt only beside a `>>>` line, or in the
# first column. A cell with none of them is left unchanged by IPython, so it is scanned as written; any other goes
# through IPython, as the kernel runs it.
IPYTHON_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
IPYTHON_LINE_START = re.compile(r"\s*(?:>>>|\.{3,}:|In \[|\[nav\]|\[ins\]|[%!?/,;])|\.\.\.")


def python_source(cell_source: str) -> str:
    """A cell's code as Python: IPython magics and `!` shell escapes become the calls they stand for, prompts and
    indentation go, as IPython itself runs the cell. A cell that holds nothing IPython's transforms act on, and
    parses as Python, is that already: it is returned as it is, and IPython is not imported for it."""
    if not needs_ipython(cell_source):
        try:
            ast.parse(cell_source)
            return cell_source
        except (SyntaxError, ValueError):
            pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        with warnings.catch_warnings():  # IPython warns of the line breaks only str.splitlines knows
            warnings.simplefilter("ignore")
            return TransformerManager().transform_cell(cell_source)
    except Exception:
        return cell_source


def needs_ipython(cell_source: str) -> bool:
    if IPYTHON_LINE_BREAKS.search(cell_source):
        return True
    lines = cell_source.split("\n")
    first = next((line for line in lines if line.strip()), "")
    return first[:1] in (" ", "\t") or any(IPYTHON_LINE_START.match(line) for line in lines)


def scan_source(nb: nbformat.NotebookNode, trusted: Iterable[str] = ()) -> list[Finding]:
    """Findings in the notebook's code cells; a cell whose source is one of `trusted` (the bundle's own first
    cell, unchanged) is not scanned."""
    trusted = {t.strip() for t in trusted}
    findings: list[Finding] = []
    number = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        number += 1
        if cell.get("source", "").strip() in trusted:
            continue
        source = python_source(cell.get("source", ""))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            for kind, what in node_findings(node):
                line = getattr(node, "lineno", 0)
                text = lines[line - 1].strip()[:100] if 0 < line <= len(lines) else ""
                findings.append(Finding(kind, "source", f"code cell {number}, line {line}: {what}: {text}"))
    return unique(findings)


def node_findings(node: ast.AST) -> Iterable[tuple[str, str]]:
    if isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
        yield ATTRIBUTES[node.attr]
    elif isinstance(node, ast.Name) and node.id in ATTRIBUTES:
        yield ATTRIBUTES[node.id]
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                                                 else [])
        for name in names:
            for module, found in MODULES.items():
                if name == module or name.startswith(module + "."):
                    yield found
            if name.split(".")[-1] in ATTRIBUTES:
                yield ATTRIBUTES[name.split(".")[-1]]
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        if node.value in ATTRIBUTES:  # getattr(op, "_op_dk"): the attribute by its name
            yield ATTRIBUTES[node.value]
        for pattern, found in STRINGS.items():
            if pattern.search(node.value):
                yield found
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC:
        yield "dynamic-code", DYNAMIC[node.func.id]
    elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            root = target
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if target is not root and isinstance(root, ast.Name) and root.id in PATCHED_ROOTS:
                yield "grader-patched", f"replaces {ast.unparse(target)}"


def unique(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.kind, f.origin, f.detail), f)
    return list(seen.values())


# ----------------------------------------------------------------------------- the pipe out of the kernel

KERNEL_KINDS = {"A": None, "T": "guard-tampered", "S": "grader-patched", "X": "kernel-start"}
AUDIT_KINDS = {"introspection": "introspection", "native code": "native", "signals": "signals",
               "network": "network", "processes": "processes", "escape": "escape", "dynamic code": "dynamic-code",
               "concurrency": "concurrency", "custom-op": "custom-op", "dispatch-keys": "dispatch-keys"}
WATCH_KINDS = frozenset({"frames", "introspection", "guard-tampered", "grader-patched", "native", "dynamic-code"})


def needs_watch(findings: Iterable[Finding]) -> bool:
    """Source that reaches into the interpreter: guarded calls of this submission get the closer watch."""
    return any(f.kind in WATCH_KINDS for f in findings)


class IntegrityChannel:
    """The read end of a kernel's integrity pipe, drained into a list of lines: by a thread as lines come, and by
    whoever asks for a call's lines (`call_events`), who reads what is there at once rather than wait for the
    thread to wake (a guarded call's last line is in the pipe before its answer is on the probe socket)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.lines: list[tuple[str, str]] = []
        self.pending = b""
        self.dropped = 0
        self.closed = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def handed_over(self) -> None:
        """The kernel holds the write end now; the grader's copy goes, so the pipe closes with the kernel."""
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    def _drain(self) -> None:
        try:
            while not self.closed:
                try:
                    select.select([self.read_fd], [], [])
                except (OSError, ValueError):
                    with self.cond:
                        self.closed = True
                        self.cond.notify_all()
                    return
                with self.cond:
                    self._read_available()
        finally:  # the pipe's last holder has exited, or `close` read it to the end already: its read end goes
            try:
                os.close(self.read_fd)
            except OSError:
                pass

    def _read_available(self) -> None:
        """Whatever the pipe holds now, as lines (the caller holds `cond`); at its end, the channel is closed."""
        while not self.closed:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                self.cond.notify_all()
                return
            self.pending += chunk
            *complete, pending = self.pending.split(b"\n")
            self.pending = pending[-4096:]
            for raw in complete:
                text = raw.decode("utf-8", "replace")[:1000]
                kind, _, detail = text.partition(" ")
                if len(self.lines) < MAX_LINES:
                    self.lines.append((kind, detail))
                else:
                    self.dropped += 1
            self.cond.notify_all()

    def call_events(self, call_id: str, data: bytes, timeout: float = 2.0) -> list[str]:
        """What the library guard reported for one guarded call: forbidden functions used, tampering, or
        why its report cannot be trusted (missing, or for other bytes than the grader received)."""
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                self._read_available()
                begin = next((i for i, (k, d) in enumerate(self.lines) if k == "B" and d == call_id), None)
                end = next((i for i, (k, d) in enumerate(self.lines) if k == "E" and d.split(" ")[0] == call_id),
                           None)
                if end is not None or self.closed or time.monotonic() > deadline:
                    break
                self.cond.wait(0.05)
            if begin is None or end is None or end < begin:
                return ["the library guard did not report on this call (the grader's probe was replaced or "
                        "its pipe tampered with)"]
            used: list[str] = []
            for kind, detail in self.lines[begin + 1:end]:
                if kind in ("O", "P") and detail not in used:
                    used.append(detail)
                elif kind == "T" and f"guard tampered: {detail}" not in used:
                    used.append(f"guard tampered: {detail}")
            reported = self.lines[end][1].split(" ")[1:]
            if reported != [digest]:
                used.append("guard tampered: the answer the grader received is not the one the guard saw")
            return used

    def warnings(self) -> list[str]:
        """What the kernel said of its own sandbox that weakens it (`N` lines: no system call filter)."""
        with self.cond:
            return sorted({detail for kind, detail in self.lines if kind == "N"})

    def findings(self) -> list[Finding]:
        with self.cond:
            lines = list(self.lines)
        found: list[Finding] = []
        for kind, detail in lines:
            if kind == "A":
                category = detail.split(":", 1)[0]
                found.append(Finding(AUDIT_KINDS.get(category, "kernel"), "kernel", detail))
            elif kind in KERNEL_KINDS and KERNEL_KINDS[kind]:
                found.append(Finding(KERNEL_KINDS[kind], "kernel", detail))
        if self.dropped:
            found.append(Finding("flooded", "kernel", f"{self.dropped} more reports from the kernel were dropped"))
        return unique(found)

    def close(self, wait: float = 0.0) -> None:
        """Called once the kernel was sent SIGKILL (`Session.stop`): it writes no more, and what it wrote is in the
        pipe, read now; its exit (some hundredths of a second, a forked kernel unmapping its memory), which closes
        the pipe and ends the drain thread, is not waited for. Other processes may hold the write end and end only
        later (the kernel's children, killed as its sandbox's init exits): with `wait`, the pipe's closing is waited
        for first, at most that many seconds, so that what they write on the way is read too."""
        self.handed_over()
        if wait:
            self.thread.join(timeout=wait)
        with self.cond:
            self._read_available()
            self.closed = True
            self.cond.notify_all()
