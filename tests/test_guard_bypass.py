"""The library guard sees a forbidden operator on every thread, inside custom operators, whatever the dispatch keys.

Each attack computes the convolution questions with `F.conv2d`/`F.max_pool2d` (or their kernels) in a way the
guard's per-thread dispatch key cannot see: on another thread, inside a custom operator, with the key excluded
or dropped, through a copy of the grader's own guard, with the guard's kernels overridden or removed, or by
calling an operator's kernel below the dispatcher. Each must lose the points of those questions and be flagged,
never credited silently. An honest solution stays unflagged and fully marked.
"""

from __future__ import annotations

import nbformat
import pytest

from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.kernel.isolation import bwrap_unavailable
from conftest import cell_index_defining

pytestmark = pytest.mark.slow
needs_bwrap = pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox here: {bwrap_unavailable()}")

LIBRARY = """
import torch
import torch.nn.functional as F

def conv2d_single(image, kernel):
    return {run}(lambda: F.conv2d(image[None, None], kernel[None, None])[0, 0])

def conv2d(x, weight, bias=None, stride=1, padding=0):
    return {run}(lambda: F.conv2d(x, weight, bias, stride=stride, padding=padding))

def max_pool2d(x, kernel_size, stride=None):
    return {run}(lambda: F.max_pool2d(x, kernel_size, stride))
"""

KEY = "import torch\nKEY = torch._C.DispatchKey.PreDispatch\n"
# `F` swapped, for the call, for a stand-in whose conv2d and max_pool2d call an operator's kernel directly
DIRECT = """import torch
CPU = torch._C.DispatchKey.CPU
def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]
class Direct:
    @staticmethod
    def conv2d(x, w, b=None, stride=1, padding=0):
        return {conv}
    @staticmethod
    def max_pool2d(x, k, stride=None):
        return {pool}
def direct(f):
    global F
    F, saved = Direct, F
    try:
        return f()
    finally:
        F = saved
"""

# a tensor subclass made with no `__torch_dispatch__` (and PyTorch's function handling off, as the handler needs)
LATE_BOX = ("import torch\n"
            "class Box(torch.Tensor):\n    __torch_function__ = torch._C._disabled_torch_function_impl\n"
            "    @staticmethod\n    def __new__(cls, f):\n"
            "        box = torch.Tensor._make_wrapper_subclass(cls, (1,), dtype=torch.float32)\n"
            "        box.f = f\n        return box\n"
            "def _handler(cls, func, types, args=(), kwargs=None):\n    return args[0].f()\n")

ATTACKS = {
    "thread_pool": ("from concurrent.futures import ThreadPoolExecutor\n"
                    "def on_thread(f):\n    with ThreadPoolExecutor(1) as pool:\n        return pool.submit(f).result()\n",
                    "on_thread"),
    "thread_pool_made_earlier": ("from concurrent.futures import ThreadPoolExecutor\nPOOL = ThreadPoolExecutor(1)\n"
                                 "POOL.submit(lambda: None).result()\n"
                                 "def on_thread(f):\n    return POOL.submit(f).result()\n", "on_thread"),
    "custom_op": ("import torch\n_pending = []\n"
                  "@torch.library.custom_op('student::run', mutates_args=())\n"
                  "def _run(x: torch.Tensor) -> torch.Tensor:\n    return _pending[-1]().clone()\n"
                  "@_run.register_fake\ndef _(x):\n    return torch.empty(0)\n"
                  "def in_op(f):\n    _pending.append(f)\n    return _run(torch.zeros(1))\n", "in_op"),
    "dispatch_subclass": ("import torch\n"  # its handler runs with the keys above Python excluded, the guard's too
                          "class Box(torch.Tensor):\n    @staticmethod\n    def __new__(cls, f):\n"
                          "        box = torch.Tensor._make_wrapper_subclass(cls, (1,), dtype=torch.float32)\n"
                          "        box.f = f\n        return box\n"
                          "    @classmethod\n    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):\n"
                          "        return args[0].f()\n"
                          "def in_handler(f):\n    return torch.neg(Box(f))\n", "in_handler"),
    # the same handler attached once the class is made (its `__init_subclass__` saw no handler), before any call...
    "dispatch_attached_later": (LATE_BOX + "Box.__torch_dispatch__ = classmethod(_handler)\n"
                                "def in_handler(f):\n    return torch.neg(Box(f))\n", "in_handler"),
    # ...or during the call, and taken off again before it returns
    "dispatch_attached_in_call": (LATE_BOX + "def in_handler(f):\n"
                                  "    Box.__torch_dispatch__ = classmethod(_handler)\n"
                                  "    try:\n        return torch.neg(Box(f))\n"
                                  "    finally:\n        del Box.__torch_dispatch__\n", "in_handler"),
    # ...or one of PyTorch's own subclasses given another handler during the call, and its own back before it returns
    "library_handler_swapped": ("import torch\nfrom torch.testing._internal.logging_tensor import LoggingTensor\n"
                                "_pending = []\n"
                                "def _handler(cls, func, types, args=(), kwargs=None):\n    return _pending[-1]()\n"
                                "def in_handler(f):\n    _pending.append(f)\n"
                                "    saved = LoggingTensor.__dict__['__torch_dispatch__']\n"
                                "    LoggingTensor.__torch_dispatch__ = classmethod(_handler)\n"
                                "    try:\n        return torch.ops.aten.neg.default(LoggingTensor(torch.zeros(1)))\n"
                                "    finally:\n        LoggingTensor.__torch_dispatch__ = saved\n", "in_handler"),
    "excluded_keys": ("import torch\n"
                      "KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | "
                      "torch._C.DispatchKeySet(torch._C.DispatchKey.PythonTLSSnapshot)\n"
                      "def below(f):\n    with torch._C._ExcludeDispatchKeyGuard(KEYS):\n        return f()\n", "below"),
    # the guard's own key (PreDispatch), each way a thread's dispatch keys can be changed
    "key_excluded": (KEY + "def below(f):\n    torch._C._dispatch_tls_set_dispatch_key_excluded(KEY, True)\n"
                     "    try:\n        return f()\n    finally:\n"
                     "        torch._C._dispatch_tls_set_dispatch_key_excluded(KEY, False)\n", "below"),
    "key_dropped": (KEY + "def below(f):\n    torch._C._dispatch_tls_set_dispatch_key_included(KEY, False)\n"
                    "    try:\n        return f()\n    finally:\n"
                    "        torch._C._dispatch_tls_set_dispatch_key_included(KEY, True)\n", "below"),
    "key_forced": (KEY + "def below(f):\n"
                   "    with torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set().remove(KEY),\n"
                   "                                         torch._C._dispatch_tls_local_exclude_set()):\n"
                   "        return f()\n", "below"),
    "key_excluded_by_alias": (KEY + "def below(f):\n"
                              "    with torch._C.ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(KEY)):\n"
                              "        return f()\n", "below"),
    "grader_copy": ("from autograder.kernel.kernel_side.guard import ForbiddenOps\n"  # its remove() drops the key
                    "def below(f):\n    ops = ForbiddenOps(('conv',), lambda *a: None)\n    ops.remove()\n"
                    "    try:\n        return f()\n    finally:\n        ops.install()\n", "below"),
    "kernels_overridden": ("import torch\nLIB = torch.library.Library('aten', 'IMPL')\n"
                           "for _name in torch._C._dispatch_get_all_op_names():\n"
                           "    _ns, _, _rest = _name.partition('::')\n"
                           "    if _ns == 'aten' and ('conv' in _rest or 'pool' in _rest):\n"
                           "        try:\n            LIB.impl(_rest, torch.library.fallthrough_kernel, 'PreDispatch')\n"
                           "        except Exception:\n            pass\n"
                           "def as_is(f):\n    return f()\n", "as_is"),
    "keys_restored": ("import torch\nOUTER = torch._C._PreserveDispatchKeyGuard()\nOUTER.__enter__()\n"  # the keys
                      "def below(f):\n    inner = torch._C._PreserveDispatchKeyGuard()\n    inner.__enter__()\n"  # as
                      "    OUTER.__exit__(None, None, None)\n    OUTER.__enter__()\n    try:\n        return f()\n"  # saved
                      "    finally:\n        inner.__exit__(None, None, None)\n", "below"),  # before the call
    "python_dispatcher": ("import torch\nfrom torch._dispatch.python import enable_python_dispatcher\n"
                          "K = torch._C.DispatchKey\n"  # an operator's Python-dispatcher cache sends it below the key
                          "for _name in torch._C._dispatch_get_all_op_names():\n"
                          "    _ns, _, _rest = _name.partition('::')\n    _base, _, _ov = _rest.partition('.')\n"
                          "    if _ns == 'aten' and ('conv' in _base or 'pool' in _base) and 'backward' not in _base:\n"
                          "        try:\n            _op = getattr(getattr(torch.ops.aten, _base), _ov or 'default')\n"
                          "            for _k in (K.CPU, K.CompositeExplicitAutograd, K.CompositeImplicitAutograd):\n"
                          "                if _op.has_kernel_for_dispatch_key(_k):\n"
                          "                    _op._dispatch_cache[getattr(K, 'Pre' + 'Dispatch')] = _k\n"
                          "                    break\n"
                          "        except Exception:\n            pass\n"
                          "def below(f):\n    with enable_python_dispatcher():\n        return f()\n", "below"),
    "thread_from_asyncio": ("import asyncio\nfrom concurrent.futures import ThreadPoolExecutor\n"  # started by asyncio
                            "def on_thread(f):\n    box, pool, loop = [], ThreadPoolExecutor(1), asyncio.new_event_loop()\n"
                            "    loop.run_in_executor(pool, lambda: box.append(f()))\n"
                            "    pool.shutdown(wait=True)\n    loop.close()\n    return box[0]\n", "on_thread"),
    # a thread asyncio started for its executor before any call (no tripwire: not the notebook's doing), handed the
    # work during the call, when no thread starts
    "thread_started_before": ("import asyncio\n_loop = asyncio.new_event_loop()\n_loop.run_in_executor(None, int)\n"
                              "def on_thread(f):\n    return _loop._default_executor.submit(f).result()\n",
                              "on_thread"),
    # the kernel's own IOPub thread, handed the work
    "kernel_thread": ("import sys, threading\nPUB = sys.stdout.pub_thread\n"
                      "def on_thread(f):\n    box, done = [], threading.Event()\n"
                      "    PUB.schedule(lambda: (box.append(f()), done.set()))\n"
                      "    done.wait(30)\n    return box[0]\n", "on_thread"),
    # ...or its control thread's event loop
    "kernel_loop_thread": ("import threading\nLOOP = get_ipython().kernel.control_thread.io_loop\n"
                           "def on_thread(f):\n    box, done = [], threading.Event()\n"
                           "    LOOP.add_callback(lambda: (box.append(f()), done.set()))\n"
                           "    done.wait(30)\n    return box[0]\n", "on_thread"),
    # ...or ZeroMQ's garbage collector thread: a buffer sent without a copy is dropped there, running its finalizer
    "collector_finalizer": ("import time, zmq\n_ctx = zmq.Context()\n"
                            "_a, _b = _ctx.socket(zmq.PAIR), _ctx.socket(zmq.PAIR)\n"
                            "_a.bind('inproc://relay')\n_b.connect('inproc://relay')\n_box = {}\n"
                            "class _Parcel(bytearray):\n    def __del__(self):\n        _box[id(self.f)] = self.f()\n"
                            "def on_collector(f):\n    parcel = _Parcel(100000)\n    parcel.f = f\n"
                            "    _a.send(parcel, copy=False)\n    del parcel\n    _b.recv()\n"
                            "    start = time.time()\n"
                            "    while id(f) not in _box and time.time() - start < 10:\n        time.sleep(0.001)\n"
                            "    return _box.pop(id(f))\n", "on_collector"),
    "kernel_from_vars": (DIRECT.format(  # the kernel-by-key entry point read from the operator's __dict__
        conv="vars(torch.ops.aten._slow_conv2d_forward.default)['_op' + '_dk'](CPU, x, w, list(w.shape[-2:]), b, "
             "_pair(stride), _pair(padding))",
        pool="vars(torch.ops.aten.max_pool2d_with_indices.default)['_op' + '_dk'](CPU, x, _pair(k), _pair(stride or k), "
             "[0, 0], [1, 1], False)[0]"), "direct"),
    # an operator's kernel called below the dispatcher's top, where no key is looked at
    "redispatched": (DIRECT.format(
        conv="torch.ops.aten.mkldnn_convolution.default.redispatch(torch._C.DispatchKeySet(CPU), x.contiguous(), "
             "w.contiguous(), b, _pair(padding), _pair(stride), [1, 1], 1)",
        pool="torch.ops.aten.max_pool2d_with_indices.default.redispatch(torch._C.DispatchKeySet(CPU), x, _pair(k), "
             "_pair(stride or k), [0, 0], [1, 1], False)[0]"), "direct"),
    "kernel_called": (DIRECT.format(
        conv="torch._C._dispatch_get_computed_kernel_for_dispatch_key('aten::mkldnn_convolution', CPU).call_boxed("
             "torch._C.DispatchKeySet(CPU), x.contiguous(), w.contiguous(), b, _pair(padding), _pair(stride), "
             "[1, 1], 1)",
        pool="torch._C._dispatch_get_computed_kernel_for_dispatch_key('aten::max_pool2d_with_indices', CPU)"
             ".call_boxed(torch._C.DispatchKeySet(CPU), x, _pair(k), _pair(stride or k), [0, 0], [1, 1], False)[0]"),
                      "direct"),
    "kernel_by_key": (DIRECT.format(
        conv="torch.ops.aten._slow_conv2d_forward.default._op_dk(CPU, x, w, list(w.shape[-2:]), b, _pair(stride), "
             "_pair(padding))",
        pool="torch.ops.aten.max_pool2d_with_indices.default._op_dk(CPU, x, _pair(k), _pair(stride or k), [0, 0], "
             "[1, 1], False)[0]"), "direct"),
}


def attacker(solution, tmp_path, name):
    setup, run = ATTACKS[name]
    nb = nbformat.read(solution, as_version=4)
    for fn in ("conv2d_single", "conv2d", "max_pool2d"):
        nb.cells[cell_index_defining(nb, fn)].source = f"# {fn}: see below"
    nb.cells.append(nbformat.v4.new_code_cell(setup + LIBRARY.format(run=run)))
    path = tmp_path / "in" / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module", params=[pytest.param("bwrap", marks=needs_bwrap), "user"])
def graded(convolution_build, tmp_path_factory, request):
    """Under both isolations: the guard works inside the kernel, whatever keeps the kernel from the grader."""
    from test_isolation_user import opened_environment

    if request.param == "user" and (reason := opened_environment()):
        pytest.skip(f"no user sandbox here: {reason}")
    tmp = tmp_path_factory.mktemp(f"bypass-{request.param}")
    solution = convolution_build.autograder_dir / "solution.ipynb"
    paths = [attacker(solution, tmp, name) for name in ATTACKS]
    (tmp / "in" / "honest.ipynb").write_bytes(solution.read_bytes())
    child = nbformat.read(solution, as_version=4)  # honest, with a process of its own alive through the checks
    child.cells.append(nbformat.v4.new_code_cell(
        "import subprocess, sys\nHELPER = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"))
    nbformat.write(child, tmp / "in" / "child_process.ipynb")
    report = grade_into(load_assignment(convolution_build.autograder_dir),
                        [*paths, tmp / "in" / "honest.ipynb", tmp / "in" / "child_process.ipynb"],
                        tmp / "out", GradeSettings(jobs=1, figures=False, force=True, isolation=request.param))
    return {r.submission: r for r in report.graded}


RAISES = {"kernel_from_vars"}  # the entry point is not in the operator's __dict__: the student's call raises


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_library_call_the_dispatch_mode_cannot_see_is_still_caught(graded, name):
    result = graded[name]
    points = {q.id: q.points for q in result.questions}
    assert points["conv2d_single"] == 0 and points["conv2d"] == 0 and points["max_pool2d"] == 0, points
    assert set(result.flag_kinds) & {"concurrency", "custom-op", "dispatch-keys", "guard-tampered", "grader-patched"} \
        or name in RAISES, result.flags  # and flagged


def test_the_honest_solution_is_neither_slowed_into_failure_nor_flagged(graded):
    honest = graded["honest"]
    assert honest.total == honest.max_total and honest.flags == []


def test_a_process_the_notebook_started_is_reported_not_held_against_it(graded):
    """A child process could compute outside the guard: the instructor is told it ran during the checks (found by a
    read of /proc per guarded call once the audit hook saw a process start); the answers are still the student's."""
    child = graded["child_process"]
    assert child.total == child.max_total
    assert any("process(es) started by the notebook ran during a guarded call" in f["detail"] for f in child.flags), \
        child.flags
