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


The code is split by job into the modules of this package (`refs`, `plain`, `origin`, `guard`, `watch`,
`answer`, `server`), imported normally by the grader and the self-check. A grading kernel runs a private copy
(`load_private`): every module's code executed in order into one namespace with its own builtins; the
modules import each other only with one-line `from .module import names` statements, which the private copy
leaves out (every name is already in its namespace).
"""

from __future__ import annotations

import builtins
from pathlib import Path

from .answer import answer, call_and_answer, materialise, resolve, response
from .guard import ForbiddenOps, Guard, ListSink, PipeSink, ProbeFault, format_error, guarded_call
from .origin import CodeOrigin, default_origin
from .plain import opaque, plain_module, to_plain, type_name
from .refs import MAX_DEPTH, MAX_REPR, TAG
from .server import ProbeServer, read_frame, serve, warm_up, write_frame
from .watch import AuditWatch, StateWatch
from .wire import WireError, answer_decode, answer_encode, wire_decode, wire_encode

MODULES = ("refs", "wire", "plain", "origin", "guard", "watch", "answer", "server")
SIBLING_IMPORT = "from ."


def private_source() -> str:
    """The package's code as one module: each file in order, sibling imports left out."""
    here = Path(__file__).resolve().parent
    lines: list[str] = []
    for name in MODULES:
        for line in (here / f"{name}.py").read_text(encoding="utf-8").splitlines():
            if line.startswith(SIBLING_IMPORT):
                if "(" in line:
                    raise ImportError(f"kernel_side/{name}.py: sibling imports must fit on one line: {line}")
                line = ""  # kept as an empty line: line numbers in tracebacks stay close
            elif line.startswith("from __future__"):
                line = ""
            lines.append(line)
    return "from __future__ import annotations\n" + "\n".join(lines)


def load_private():
    """This package's code executed once more, in a namespace of its own with its own copy of the builtins: what
    a grading kernel runs, so that rebinding builtins or module attributes in the notebook reaches none of it,
    and no `import` in the notebook returns it."""
    here = Path(__file__).resolve().parent
    namespace = {"__builtins__": dict(vars(builtins)), "__name__": "torchgrade_probe",
                 "__file__": str(here / "__init__.py")}
    exec(compile(private_source(), str(here / "private.py"), "exec"), namespace)
    return namespace


__all__ = [
    "answer", "AuditWatch", "call_and_answer", "CodeOrigin", "default_origin", "ForbiddenOps", "format_error", "Guard",
    "guarded_call", "ListSink", "load_private", "materialise", "MAX_DEPTH", "MAX_REPR", "opaque", "PipeSink",
    "plain_module", "ProbeFault", "ProbeServer", "read_frame", "resolve", "response", "serve", "StateWatch", "TAG",
    "to_plain", "type_name", "warm_up", "answer_decode", "answer_encode", "wire_decode", "wire_encode", "WireError",
    "write_frame",
]
