"""The check library: what an assignment's `checks/public.py` and `checks/hidden.py` import.

- `core`: checks, check sets, outcomes, running them;
- `compare`: comparators with explicit tolerances, known mistakes, accuracy credit;
- `models`: small models described as data (specs), module snapshots and state comparisons;
- `data`: the MNIST split reader, and loaders and hooks that checks hand to student code;
- `render`: outcomes shown to students or to instructors.
"""

from ..kernel.codec import ModuleSnapshot, Opaque, ref
from ..kernel.probe import Call, Forbid, Student
from .compare import (accuracy, as_number, call_problem, close, diagnose, difference, every, exact, first_failure, frame,
                      int_answer, mapping, on_device, plain, randint, randn, returned, same, scalar, shape_hint,
                      show, signature, values_close)
from .core import (PARAMETERS, STATUSES, Check, CheckFn, CheckSet, Context, Misconception, Outcome, Verdict,
                   check_seed, failed, passed, run_check, run_checks)
from .data import OnePassLoader, batches_of, keep_output, mnist_split
from .models import build, layer, module_snapshot, seq, spec, state_difference, state_unchanged, states_close

__all__ = [
    "Call", "Check", "CheckFn", "CheckSet", "Context", "Forbid", "Misconception", "ModuleSnapshot", "OnePassLoader",
    "Opaque", "Outcome", "PARAMETERS", "STATUSES", "Student", "Verdict", "accuracy", "as_number", "batches_of",
    "build", "call_problem", "check_seed", "close", "diagnose", "difference", "every", "exact", "failed", "first_failure",
    "frame", "int_answer", "keep_output", "mapping", "plain", "values_close", "layer", "mnist_split", "module_snapshot", "on_device", "passed", "randint",
    "randn", "ref", "returned", "run_check", "run_checks", "same", "scalar", "seq", "shape_hint", "show",
    "signature", "spec", "state_difference", "state_unchanged", "states_close",
]
