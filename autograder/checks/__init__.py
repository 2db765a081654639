"""The check library: what an assignment's `checks/public.py` and `checks/hidden.py` import.

- `core`: checks, check sets, outcomes, running them;
- `compare`: comparators with explicit tolerances, known mistakes, accuracy credit;
- `models`: module snapshots and state comparisons.
"""

from ..kernel.codec import ModuleSnapshot, Opaque, ref
from ..kernel.probe import Call, Forbid, Student
from .compare import (accuracy, call_problem, close, diagnose, difference, exact, first_failure, int_answer, randint,
                      randn, same, shape_hint, show, signature)
from .core import (PARAMETERS, STATUSES, Check, CheckFn, CheckSet, Context, Misconception, Outcome, Verdict,
                   check_seed, failed, passed, run_check, run_checks)
from .models import module_snapshot, state_unchanged

__all__ = [
    "Call", "Check", "CheckFn", "CheckSet", "Context", "Forbid", "Misconception", "ModuleSnapshot", "Opaque",
    "Outcome", "PARAMETERS", "STATUSES", "Student", "Verdict", "accuracy", "call_problem", "check_seed", "close",
    "diagnose", "difference", "exact", "failed", "first_failure", "int_answer", "module_snapshot", "passed",
    "randint", "randn", "ref", "run_check", "run_checks", "same", "shape_hint", "show", "signature",
    "state_unchanged",
]
