"""The check library: what an assignment's `checks/public.py` and `checks/hidden.py` import.

- `core`: checks, check sets, running them (outcomes are `autograder.outcomes`'s);
- `student`: calling the student's functions and reading its variables, and the verdicts for calls that gave
  no usable value;
- `numbers`, `tensors`, `compare`: comparators with explicit tolerances (numbers, tensors, structured values);
- `mistakes`: known mistakes, recognised and named; `accuracy`: partial credit for trained models;
- `inputs`: seeded random inputs;
- `models`: small models described as data (specs), module snapshots and state comparisons;
- `data`: the MNIST split reader, and loaders and hooks that checks hand to student code;
"""

from ..kernel.codec import ModuleSnapshot, Opaque, ref
from ..kernel.probe import Call, Forbid, Student
from .accuracy import accuracy, model_accuracy
from .compare import every, exact, first_failure, frame, mapping, shape_list
from .inputs import int_or_pair, randint, randn, random_pixels
from .mistakes import diagnose, known_mistakes, normal_sample
from .numbers import as_number, as_numbers, int_answer, is_int, plain, same, scalar, show, values_close
from .student import (call_problem, ExplainedStudent, on_device, returned, returned_as, signature, student_call,
                      student_value, undefined, Undefined, value_problem)
from .tensors import close, difference, equal_tensor, shape_hint, tensor_tuple
from ..outcomes import CHECK_STATUSES as STATUSES, Outcome
from .core import (Check, check_seed, CheckFn, CheckSet, Context, failed, Misconception, PARAMETERS, passed, run_check,
                   run_checks, Verdict)
from .data import batches_of, keep_output, MissingData, mnist_split, OnePassLoader, tensor_loader
from .models import (again, args_state, as_module, brief, build, changed_keys, describe, fixed, layer, leaf_types,
                     model_call, module_snapshot, named, output_problem, random_state, run_module, seq, spec,
                     state_after_step, state_difference, state_of, state_unchanged, states_close, with_weights)

__all__ = [
    "accuracy", "again", "args_state", "as_module", "as_number", "as_numbers", "batches_of", "brief", "build", "Call",
    "call_problem", "changed_keys", "Check", "check_seed", "CheckFn", "CheckSet", "close", "Context", "describe",
    "diagnose", "difference", "equal_tensor", "every", "exact", "ExplainedStudent", "failed", "first_failure", "fixed",
    "Forbid", "frame", "int_answer", "int_or_pair", "is_int", "keep_output", "known_mistakes", "layer", "leaf_types",
    "mapping", "Misconception", "MissingData", "mnist_split", "model_accuracy", "model_call", "module_snapshot",
    "ModuleSnapshot", "named", "normal_sample", "on_device", "OnePassLoader", "Opaque", "Outcome", "output_problem",
    "PARAMETERS",
    "passed", "plain", "randint", "randn", "random_pixels", "random_state", "ref", "returned", "returned_as",
    "run_check", "run_checks", "run_module", "same", "scalar", "seq", "shape_hint", "shape_list", "show", "signature",
    "spec", "state_after_step", "state_difference", "state_of", "state_unchanged", "states_close", "STATUSES",
    "Student", "student_call", "student_value", "tensor_loader", "tensor_tuple", "undefined", "Undefined",
    "value_problem", "values_close", "Verdict", "with_weights"
]
