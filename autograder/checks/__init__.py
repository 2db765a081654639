"""The check library: what an assignment's `checks/public.py` and `checks/hidden.py` import.

- `core`: checks, check sets, running them (outcomes are `autograder.outcomes`'s);
- `compare`: comparators with explicit tolerances, known mistakes, accuracy credit;
- `models`: small models described as data (specs), module snapshots and state comparisons;
- `data`: the MNIST split reader, and loaders and hooks that checks hand to student code;
"""

from ..kernel.codec import ModuleSnapshot, Opaque, ref
from ..kernel.probe import Call, Forbid, Student
from .compare import (accuracy, as_number, as_numbers, call_problem, close, diagnose, difference, equal_tensor, every,
                      exact, first_failure, frame, int_answer, int_or_pair, is_int, known_mistakes, mapping,
                      model_accuracy, normal_sample, on_device, plain, randint, randn, random_pixels, returned,
                      returned_as, same, scalar, shape_hint, shape_list, show, signature, student_call, student_value,
                      tensor_tuple, value_problem, values_close)
from ..outcomes import CHECK_STATUSES as STATUSES, Outcome
from .core import (Check, check_seed, CheckFn, CheckSet, Context, failed, Misconception, PARAMETERS, passed, run_check,
                   run_checks, Verdict)
from .data import batches_of, keep_output, mnist_split, OnePassLoader, tensor_loader
from .models import (again, args_state, as_module, brief, build, changed_keys, describe, fixed, layer, leaf_types,
                     model_call, module_snapshot, named, output_problem, random_state, run_module, seq, spec,
                     state_after_step, state_difference, state_of, state_unchanged, states_close, with_weights)

__all__ = [
    "accuracy", "again", "args_state", "as_module", "as_number", "as_numbers", "batches_of", "brief", "build",
    "Call", "call_problem", "changed_keys", "Check", "check_seed", "CheckFn", "CheckSet", "close", "Context",
    "describe", "diagnose", "difference", "equal_tensor", "every", "exact", "failed", "first_failure", "fixed",
    "Forbid", "frame", "int_answer", "int_or_pair", "is_int", "keep_output", "known_mistakes", "layer",
    "leaf_types", "mapping", "Misconception", "mnist_split", "model_accuracy", "model_call", "module_snapshot",
    "ModuleSnapshot", "named", "normal_sample", "on_device", "OnePassLoader", "Opaque", "Outcome", "output_problem",
    "PARAMETERS", "passed", "plain", "randint", "randn", "random_pixels", "random_state", "ref", "returned",
    "returned_as", "run_check", "run_checks", "run_module", "same", "scalar", "seq", "shape_hint", "shape_list",
    "show", "signature", "spec", "state_after_step", "state_difference", "state_of", "state_unchanged",
    "states_close", "STATUSES", "Student", "student_call", "student_value", "tensor_loader", "tensor_tuple",
    "value_problem", "values_close", "Verdict", "with_weights",
]
