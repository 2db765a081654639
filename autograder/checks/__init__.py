"""The check library: what an assignment's `checks/public.py` and `checks/hidden.py` import.

- `core`: checks, check sets, outcomes, running them;
- `compare`: comparators with explicit tolerances, known mistakes, accuracy credit;
- `models`: small models described as data (specs), module snapshots and state comparisons;
- `data`: the MNIST split reader, and loaders and hooks that checks hand to student code;
- `render`: outcomes shown to students or to instructors.
"""

from ..kernel.codec import ModuleSnapshot, Opaque, ref
from ..kernel.probe import Call, Forbid, Student
from .compare import (accuracy, as_number, as_numbers, call_problem, close, diagnose, difference, equal_tensor, every, exact,
                      first_failure, frame, model_accuracy, normal_sample,
                      int_answer, int_or_pair, is_int, known_mistakes, mapping, on_device, plain, randint, randn, random_pixels, returned, returned_as, same,
                      scalar, shape_hint, shape_list, show, signature, student_call, student_value, tensor_tuple,
                      value_problem, values_close)
from .core import (PARAMETERS, STATUSES, Check, CheckFn, CheckSet, Context, Misconception, Outcome, Verdict,
                   check_seed, failed, passed, run_check, run_checks)
from .data import OnePassLoader, batches_of, keep_output, mnist_split, tensor_loader
from .models import (args_state, brief, build, changed_keys, fixed, layer, output_problem, random_state, run_module,
                     state_after_step, state_of, module_snapshot, seq, spec, state_difference, state_unchanged,
                     states_close)
from .models import again, as_module, describe, leaf_types, model_call, named, with_weights

__all__ = [
    "Call", "Check", "CheckFn", "CheckSet", "Context", "Forbid", "Misconception", "ModuleSnapshot", "OnePassLoader",
    "Opaque", "Outcome", "PARAMETERS", "STATUSES", "Student", "Verdict", "accuracy", "as_number", "batches_of",
    "build", "call_problem", "check_seed", "close", "diagnose", "difference", "every", "exact", "failed", "first_failure",
    "frame", "int_answer", "keep_output", "mapping", "plain", "values_close", "layer", "mnist_split", "module_snapshot", "on_device", "passed", "randint",
    "randn", "ref", "returned", "run_check", "run_checks", "same", "scalar", "seq", "shape_hint", "show",
    "signature", "spec", "state_difference", "state_unchanged", "states_close",
    "args_state", "as_numbers", "changed_keys", "fixed", "output_problem", "random_state", "run_module", "state_of",
    "state_after_step", "model_accuracy", "brief", "normal_sample",
    "tensor_loader",
    "again", "as_module", "describe", "equal_tensor", "is_int", "known_mistakes", "leaf_types", "model_call", "named", "returned_as",
    "student_call", "student_value", "value_problem", "with_weights",
    "int_or_pair", "random_pixels", "shape_list", "tensor_tuple",
]
