"""Our own references to what the probe uses, taken before any student code runs (rebinding `os.write`
or `torch.save` in a notebook reaches none of them), and the limits of plain data."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import sys
import threading
import time
import weakref

import torch

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
# The library guard's dispatch key: included on a guarded call's thread, with kernels for forbidden operators only.
OP_KEY = torch._C.DispatchKey.PreDispatch
_key_included = torch._C._dispatch_tls_is_dispatch_key_included
_key_excluded = torch._C._dispatch_tls_is_dispatch_key_excluded
_include_key = torch._C._dispatch_tls_set_dispatch_key_included
_exclude_key = torch._C._dispatch_tls_set_dispatch_key_excluded
_all_op_names, _find_op = torch._C._dispatch_get_all_op_names, torch._C._dispatch_find_schema_or_throw
_op_library, _redispatch = torch._C._dispatch_library, torch._C._DispatchOperatorHandle.redispatch_boxed
_register_kernel = torch._C._DispatchModule.impl
_op_from_top = torch._C._get_operation_overload  # (qualified name, overload) -> (call, ...): an operator's Python entry
_tensor_type, _optional_type = torch._C.TensorType, torch._C.OptionalType
_has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
_numbers_as_tensors = torch._C._should_allow_numbers_as_tensors  # an operator's Python entry takes numbers as tensors
_result_type = torch.result_type
_Tensor = torch.Tensor
_higher_order_ops = torch._ops._higher_order_ops  # name -> each of PyTorch's higher-order operators
_HigherOrderOperator, _KeySet = torch._ops.HigherOrderOperator, torch._C.DispatchKeySet
_object_getattribute = object.__getattribute__
_SYMBOLIC_NUMBERS = (torch.SymInt, torch.SymFloat, torch.SymBool)  # numbers torch.compile traces with
_scalar_tensor = torch.scalar_tensor
PYTHON_DISPATCHER = torch._C.DispatchKey.PythonDispatcher
# Below Python, autograd and every mode, and on every thread (the dispatcher always includes it): a second kernel for
# the operators of layers, which sees them where the guard's key is not (`OpKernels.second`).
SECOND_KEY = torch._C.DispatchKey.BackendSelect
_weak_keys = weakref.WeakKeyDictionary
_perf_counter = time.perf_counter
_sha256 = hashlib.sha256
_enumerate_threads = threading.enumerate
_main_thread = threading.main_thread
_get_ident = threading.get_ident


class Flags:
    """What the library guard and the audit hook share: one per process (or per private copy)."""

    suspicious = False  # the notebook ran code it built at run time: guarded calls are watched closely
    bypass = False  # the notebook touched a way around the guard's dispatch key: guarded calls are observed widely
    threads = frozenset()  # the kernel's own Python threads, before its first cell: any other one is the notebook's
    loop_threads = set()  # the kernel's own threads that started their event loops later, each said from inside it
    children = False  # a process was started (fork, spawn, subprocess): guarded calls look for live children


try:  # the process-wide operator observer: a global RecordFunction callback, on every thread, whatever the keys
    from torch._C._profiler import (_add_execution_trace_observer as _observer_add,
                                    _disable_execution_trace_observer as _observer_disable,
                                    _enable_execution_trace_observer as _observer_enable,
                                    _remove_execution_trace_observer as _observer_remove)
except ImportError:  # a torch without it: a bypass then fails the call instead of being observed
    _observer_add = _observer_disable = _observer_enable = _observer_remove = None
_json_load = json.load
_unlink = os.unlink
_current_frames = sys._current_frames
