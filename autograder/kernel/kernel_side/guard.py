"""The library guard: forbidden operators and functions reported, while a student's call runs, on a pipe out of the
kernel at the moment they are seen."""

from __future__ import annotations

import os
import sys
import traceback

import torch
from .refs import OP_KEY, PYTHON_DISPATCHER, SECOND_KEY, _all_op_names, _enumerate_threads, _find_op, _get_ident, _getframe, _getprofile, _exclude_key, _include_key, _key_excluded, _key_included, _op_library, _perf_counter, _redispatch, _register_kernel, _has_kernel, _setprofile, _weak_keys, _write, _op_from_top, _optional_type, _tensor_type, _numbers_as_tensors, _result_type, _scalar_tensor, _Tensor, _higher_order_ops, _SYMBOLIC_NUMBERS, _HigherOrderOperator, _KeySet, _object_getattribute
from .plain import type_name
from .refs import Flags, _current_frames, _json_load, _observer_add, _observer_disable, _observer_enable, _observer_remove, _unlink

class ListSink:
    """Self-check: what the guard saw, kept in the student's own process."""

    def __init__(self):
        self.events = []

    def __call__(self, kind, detail):
        if (kind, detail) not in self.events:
            self.events.append((kind, detail))


class PipeSink:
    """Grading: each event leaves the kernel at once, one line on the integrity pipe."""

    def __init__(self, fd):
        self.fd = fd

    def __call__(self, kind, detail):
        text = " ".join(str(detail).split())[:400]
        try:
            _write(self.fd, f"{kind} {text}\n".encode("utf-8", "replace"))
        except OSError:
            pass  # a closed pipe is noticed by the grader


# Operators PyTorch's C++ code runs to make a tensor object of another class from a tensor: `_make_subclass` (every
# `nn.Parameter`: made, copied, moved, loaded) detaches it, `as_subclass` (a subclass's results) aliases it. A Python
# kernel's result is tied to a plain tensor object, which PyTorch then refuses to make anything else of ("the raw Tensor
# object is already associated to a python object of type Tensor"): these, and `detach_` (which copying a module runs),
# get no kernel, and no fragment forbids them (they compute nothing; "det" must not break or flag every model made in
# the call). A subclass's own constructor given data (`Tagged([1.0, 2.0])`) meets the same with `empty`, `lift_fresh`
# or `to`: those keep their kernels, as forbidding them is something no assignment does, and `to` is where C++ code
# hands a number as a tensor (`Onward`).
OBJECT_MAKERS = frozenset({"aten::detach", "aten::detach_", "aten::alias"})


class OpKernels:
    """The guard's kernels at its dispatch key (`OP_KEY`): one per operator whose name contains a fragment some
    guarded call forbade, and none for any other operator (those fall through the key in C++).

    Registered once per process and kept: a kernel forked from the zygote inherits the zygote's. The operators
    are looked for again when a fragment is new, or when modules were imported since the last look (a library
    brings its operators as it is imported: torchvision's `deform_conv2d`, `roi_pool`).
    """

    def __init__(self):
        self.fragments = set()
        self.names = set()  # "namespace::name.overload" of every operator with a kernel here
        self.libraries = {}
        self.samples = {}  # one operator with a kernel here per namespace (registration object)
        self.modules = -1  # len(sys.modules) at the last look
        self.known = 0  # how many operators there were at the last look
        self.failed = []  # operators a fragment matches that could not be given a kernel (none in practice)

    def cover(self, fragments):
        """Every operator a fragment matches has its kernel; returns the names of those that newly appeared."""
        new = [f for f in fragments if f not in self.fragments]
        if not new and len(sys.modules) == self.modules:
            return []
        self.modules = len(sys.modules)
        names = _all_op_names()
        if not new and len(names) == self.known:  # modules imported, but no operator came with them
            return []
        self.fragments.update(new)
        self.known = len(names)
        fragments = tuple(self.fragments)
        matched = {}  # "namespace::name" -> the overloads matched (every overload of a name, as they share it)
        for full in names:
            if any(fragment in op_name(full) for fragment in fragments):
                matched.setdefault(full.partition(".")[0], []).append(full)
        added = []
        for qualified, overloads in matched.items():
            if qualified in OBJECT_MAKERS:
                continue
            for full in overloads:
                if full not in self.names:
                    self.register(full, op_name(full), overloads)
                    added.append(op_name(full))
        return added

    def register(self, full, name, overloads=()):
        namespace, _, rest = full.partition("::")
        overload = rest.partition(".")[2]
        try:
            library = self.libraries.get(namespace)
            if library is None:
                library = self.libraries[namespace] = _op_library("IMPL", namespace, "", "torchgrade-guard", 0)
            handle = _find_op(f"{namespace}::{name}", overload)
            onward = Onward(handle, _op_from_top(f"{namespace}::{name}", overload)[0], overloads)
            _register_kernel(library, rest, OP_KEY, self.kernel(onward, name), True)
        except Exception:
            if full not in self.failed:
                self.failed.append(full)
            return
        try:
            if layer_operator(overloads):
                _register_kernel(library, rest, SECOND_KEY, self.second(handle, name), True)
        except Exception:  # (the first line alone, as for every other operator)
            pass
        if full in self.failed:  # registered on a later look: the key sees it now
            self.failed.remove(full)
        self.names.add(full)
        self.samples.setdefault(namespace, full)

    @staticmethod
    def kernel(onward, name):
        def kernel(keyset, *args, **kwargs):  # reports, then hands the call on below the key
            ops = ForbiddenOps.current
            if ops is not None and _get_ident() != ops.thread:  # the kernel's own threads have the key too
                ops.elsewhere(name)
            if ops is None or not ops.hit(name):  # (a kernel kept from another call's fragments)
                return onward(keyset, args, kwargs, forbidden=False)
            ops.inside += 1  # what a forbidden operator runs inside it is not reported again
            try:
                return onward(keyset, args, kwargs, forbidden=True)
            finally:
                ops.inside -= 1

        return kernel

    @staticmethod
    def second(handle, name):
        """The second line, at `SECOND_KEY`: a layer's operator reached where the guard's key could not see it (on
        another thread, or with the key excluded: in a tensor subclass's `__torch_dispatch__`, whose class the
        notebook may have given a handler of its own at any time) while a guarded call runs."""
        def kernel(keyset, *args, **kwargs):
            ops = ForbiddenOps.current
            if ops is not None and (_get_ident() != ops.thread or _key_excluded(OP_KEY) or not _key_included(OP_KEY)):
                ops.around(name)
            return _redispatch(handle, keyset.remove(SECOND_KEY), *args, **kwargs)

        return kernel

    def uncovered(self, fragments):
        """The operators a fragment matches that have no kernel here: the call must be watched otherwise."""
        return [full for full in self.failed if any(fragment in op_name(full) for fragment in fragments)]

    def intact(self):
        """The kernels registered are still there: a registration object can only drop all of its kernels at once
        (`reset`), so one operator of each (namespace) is asked."""
        return all(_has_kernel(full, OP_KEY) for full in self.samples.values())


class Onward:
    """An operator's call handed on below the guard's key: redispatched from its kernel there, as a rule.

    C++ code may pass an operator a number where it takes a tensor (a "wrapped number": `logsumexp` hands `to` an
    infinity, `det` hands `fmod_` the sign of its permutation), which reaches a Python kernel as a plain number that
    redispatching cannot take back. Such a call is made again from the top, with the key excluded for it: through the
    operator's Python entry, which turns the number into a tensor as the dispatcher did, where it takes numbers as
    tensors (`add`, `mul`, `to`...); otherwise through the overload of the same operator that takes a Scalar in those
    places (`fmod_.Scalar` for `fmod_.Tensor`), which wraps the number again; or, where there is none, with each
    number made a tensor of the dtype its operation computes in (`result_type`). The operators it runs inside then
    pass the key unseen: where it is forbidden, it is reported already; where it is not (its kernel was kept from
    another call's fragments), the process-wide observer watches the rest of the guarded call."""

    NUMBERS = (bool, int, float, complex, *_SYMBOLIC_NUMBERS)  # (symbolic: under torch.compile's dynamic shapes)
    SCALARS = ("Scalar", "Scalar?", "number", "number?")

    def __init__(self, handle, from_top, overloads=()):
        self.handle, self.from_top, self.overloads = handle, from_top, tuple(overloads)
        schema = handle.schema()
        arguments = schema.arguments
        tensor = [i for i, a in enumerate(arguments) if isinstance(a.type, _tensor_type) or (
            isinstance(a.type, _optional_type) and isinstance(a.type.getElementType(), _tensor_type))]
        self.positions = tuple(i for i in tensor if not arguments[i].kwarg_only)
        self.names = tuple(arguments[i].name for i in tensor if arguments[i].kwarg_only)
        self.arguments = [(a.name, str(a.type)) for a in arguments]
        self.numbers_taken = bool(_numbers_as_tensors(schema.name.partition("::")[2]))
        self.siblings = {}  # which arguments are numbers -> the overload's Python entry that takes them (None: none)

    def __call__(self, keyset, args, kwargs, forbidden=False):
        numbers = self.NUMBERS
        if not (any(i < len(args) and isinstance(args[i], numbers) for i in self.positions)
                or any(isinstance(kwargs.get(n), numbers) for n in self.names)):
            return _redispatch(self.handle, keyset.remove(OP_KEY), *args, **kwargs)
        if not forbidden and Guard.current is not None:
            Guard.current.observe()
        if ForbiddenOps.current is not None:  # what it runs inside passes the key unseen, by the guard's own doing
            ForbiddenOps.current.left_the_key = True
        excluded = _key_excluded(OP_KEY)
        _exclude_key(OP_KEY, True)
        try:
            if self.numbers_taken:
                return self.from_top(*args, **kwargs)
            wrapped = frozenset(
                [self.arguments[i][0] for i in self.positions if i < len(args) and isinstance(args[i], numbers)]
                + [n for n in self.names if isinstance(kwargs.get(n), numbers)])
            if wrapped not in self.siblings:
                self.siblings[wrapped] = self.sibling(wrapped)
            sibling = self.siblings[wrapped]
            if sibling is not None:
                return sibling(*args, **kwargs)
            args, kwargs = self.as_tensors(args, kwargs, wrapped)
            return self.from_top(*args, **kwargs)
        finally:
            _exclude_key(OP_KEY, excluded)

    def sibling(self, wrapped):
        """The Python entry of the overload of this operator with the same arguments, but Scalars in `wrapped`."""
        for full in self.overloads:
            qualified, _, overload = full.partition(".")
            try:
                arguments = [(a.name, str(a.type)) for a in _find_op(qualified, overload).schema().arguments]
            except Exception:
                continue
            if len(arguments) == len(self.arguments) and all(
                    name == own and (kind in self.SCALARS if name in wrapped else kind == own_kind)
                    for (name, kind), (own, own_kind) in zip(arguments, self.arguments)):
                return _op_from_top(qualified, overload)[0]
        return None

    def as_tensors(self, args, kwargs, wrapped):
        """`args` and `kwargs` with each number in `wrapped` a 0-dim tensor of the dtype it would promote to with the
        call's first tensor (a 0-dim tensor takes part in type promotion as a number of its own dtype does not)."""
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, _Tensor)]

        def tensor(value):
            return _scalar_tensor(value, dtype=_result_type(tensors[0], value)) if tensors else _scalar_tensor(value)

        names = [name for name, _ in self.arguments]
        return ([tensor(v) if i < len(names) and names[i] in wrapped else v for i, v in enumerate(args)],
                {k: tensor(v) if k in wrapped else v for k, v in kwargs.items()})


LAYER_ARGUMENTS = ("W", "qw", "kernel_size", "output_size")  # and any argument whose name holds "weight" or "prepack"


def layer_operator(overloads):
    """Whether an operator (every overload of it: "aten::conv2d", "aten::conv2d.padding") is a layer's: one that takes
    a weight (`weight`, `W`, `qw`, `packed_weight`, a prepacked one), a kernel size or an output size (convolution,
    pooling, linear, embedding, normalisation), and no argument that is a tensor in one overload and a number in
    another. Below autograd a Python kernel could not hand on a number passed where a tensor is taken (a "wrapped
    number", which ATen makes of a Scalar to call the tensor overload of an arithmetic operator, see `Onward`): those
    keep the first line alone."""
    arguments = []
    for full in overloads:
        qualified, _, overload = full.partition(".")
        arguments += _find_op(qualified, overload).schema().arguments
    tensors = {a.name for a in arguments if "Tensor" in str(a.type)}
    numbers = {a.name for a in arguments if str(a.type) in Onward.SCALARS}
    return not tensors & numbers and any(
        a.name in LAYER_ARGUMENTS or "weight" in a.name or "prepack" in a.name for a in arguments)


def op_name(full):
    """"aten::conv2d.padding" -> "conv2d": the name a fragment is matched against (as `torchgrade ops` prints it)."""
    return full.partition("::")[2].partition(".")[0]


OP_KERNELS = OpKernels()


class ForbiddenOps:
    """Reports every operator whose name contains a forbidden fragment, at the guard's own dispatch key.

    A guarded call includes `OP_KEY` (PreDispatch: above autograd, functorch and the Python key, and unused by
    eager PyTorch) in its thread's dispatch keys. Only the operators a fragment matches have a kernel there
    (`OpKernels`); every other operator falls through it in C++, so student code runs at nearly its own speed
    (a dispatch mode takes every operator through Python: three to five times slower for the loops students
    write). Every alias a student might hold (`F.conv2d`, `nn.Conv2d`, `torch.conv2d`, `torch.ops.aten.convolution`,
    a saved reference to any of them) enters the dispatcher at its top, as do the operators each one runs
    inside (a decomposition, a custom operator's body, the backward): all of them pass the key. Dispatch modes are
    no way around it, and excluding the key is a tripwire; a tensor subclass's `__torch_dispatch__`, which runs with
    the key excluded, puts calls under the observer (`Tripwires.watch_subclasses`, `around_the_key`). The operators
    of layers have a second kernel below Python and autograd, on every thread (`OpKernels.second`): what runs around
    the key on the call's thread, or on another, is seen there too (`around`).
    """

    current = None  # the one installed now: what the kernels report to

    def __init__(self, fragments, report):
        self.fragments = tuple(fragments)
        self.report = report
        self.seen = {}
        self.said = set()
        self.was_included = self.was_excluded = False
        self.hops = []  # higher-order operators that pass the key during the call
        self.modules = 0
        self.inside = 0  # how many forbidden operators the call is inside now
        self.left_the_key = False  # an operator was made again from the top, the key excluded for it (`Onward`)
        self.thread = None  # the call's own thread

    def hit(self, name):
        """Whether operator `name` is forbidden; reported once, where the call entered it (not for what it runs)."""
        match = self.match(name)
        if match and not self.inside and name not in self.said:
            self.said.add(name)
            self.report("O", name)
        return match

    def around(self, name):
        """A forbidden operator that ran around the key (`OpKernels.second`): reported, and the notebook flagged once.
        (Not what a forbidden operator runs inside it, on the call's own thread: `Onward` makes some calls again with
        the key excluded.)"""
        if not self.match(name) or (self.inside and _get_ident() == self.thread):
            return
        if name not in self.said:
            self.said.add(name)
            self.report("O", name)
        if "around" not in self.said:
            self.said.add("around")
            self.report("A", f"dispatch-keys: {name} ran around the guard's dispatch key during a guarded call (on "
                             "another thread, or in a tensor subclass's handler)")

    def elsewhere(self, name):
        """An operator seen at the key on another thread than the call's, while the call ran: work the notebook
        handed one of the kernel's own threads (said once, for the instructor)."""
        if self.match(name) and "elsewhere" not in self.said:
            self.said.add("elsewhere")
            self.report("A", f"concurrency: {name} ran on another thread of the kernel during a guarded call")

    def match(self, name):
        match = self.seen.get(name)
        if match is None:  # once per operator and guard: does a fragment match it?
            match = self.seen[name] = any(fragment in name for fragment in self.fragments)
        return match

    def install(self):
        """The kernels, and the key on this thread; False if the key cannot take effect (excluded already)."""
        self.thread = _get_ident()
        if not self.fragments:
            return True
        OP_KERNELS.cover(self.fragments)
        self.modules = len(sys.modules)
        self.was_included = _key_included(OP_KEY)
        ForbiddenOps.current = self
        self.was_excluded = _key_excluded(PYTHON_DISPATCHER)
        _exclude_key(PYTHON_DISPATCHER, True)  # (below)
        self.hops = HIGHER_ORDER_OPS.pass_the_key()
        _include_key(OP_KEY, True)
        return self.active()

    def uncovered(self):
        """The forbidden operators the key cannot see (their kernel could not be registered, none in practice)."""
        if not self.fragments:
            return []
        OP_KERNELS.cover(self.fragments)
        return OP_KERNELS.uncovered(self.fragments)

    @staticmethod
    def active():
        """The key in effect on this thread; and the Python dispatcher off, which could otherwise route an operator
        from an entry of its `_dispatch_cache` (a plain dict a notebook can write) to a kernel below the key."""
        return _key_included(OP_KEY) and not _key_excluded(OP_KEY) and _key_excluded(PYTHON_DISPATCHER)

    def remove(self):
        """The key back as it was; returns whether the guard was intact to the end of the call."""
        if not self.fragments:
            return True
        intact = self.active() and OP_KERNELS.intact()
        _include_key(OP_KEY, self.was_included)
        _exclude_key(PYTHON_DISPATCHER, self.was_excluded)
        HIGHER_ORDER_OPS.back(self.hops)
        ForbiddenOps.current = None
        if len(sys.modules) != self.modules:  # imported during the call: its operators could not be seen
            for name in OP_KERNELS.cover(self.fragments):
                self.report("T", f"the call imported a library with the operator {name}, which could not be "
                                 "checked during the call")
        return intact


class HigherOrderOps:
    """PyTorch's higher-order operators (`custom_function_call`, which `vmap` and `grad` make of an `autograd.Function`;
    `tag_activation_checkpoint`; `cond`) look for a Python kernel at each key they are dispatched to, and have none at
    the guard's: during a call they pass it (`pass_the_key`), as every operator without a kernel there does in C++
    (the operators they run pass the key as ever), and after it they are as PyTorch made them (`back`: export's
    pre-dispatch tracing, outside calls, needs them so). Each one's two key sets are made once: a call swaps them.

    Known first in the zygote (its warm-up's guarded call), from PyTorch's own table; later, only operators of the
    classes found then. Each is read and written through its own `__dict__`, kept then, with its key sets checked to
    be PyTorch's: no attribute, property or method a notebook could put there runs while a call is set up."""

    def __init__(self):
        self.count = -1  # how many there were at the last look
        self.types = set()  # the classes of those known at the first look
        self.entries = []  # [operator's __dict__, its keys, its keys without the guard's]

    def look(self):
        first, self.count = self.count < 0, len(_higher_order_ops)
        known = {id(entry[0]) for entry in self.entries}
        for hop in list(_higher_order_ops.values()):
            if not (type(hop) in self.types or first and isinstance(hop, _HigherOrderOperator)):
                continue
            try:
                state = _object_getattribute(hop, "__dict__")
                kernels = state.get("py_kernels")
                if type(state) is not dict or id(state) in known or type(kernels) is not dict or any(
                        key is OP_KEY for key in list(kernels)):
                    continue
            except Exception:
                continue
            if first:
                self.types.add(type(hop))
            self.entries.append([state, None, None])

    def pass_the_key(self):
        """Those that now pass the key (for `back`)."""
        if len(_higher_order_ops) != self.count:
            self.look()
        changed = []
        for entry in self.entries:
            state, keys, without = entry
            now = state.get("non_fallthrough_keys")
            if now is not keys:  # new, or changed since (a kernel registered): looked at again
                if type(now) is not _KeySet or now is without or not now.has(OP_KEY):
                    continue
                entry[1], entry[2] = now, now.remove(OP_KEY)
            state["non_fallthrough_keys"] = entry[2]
            changed.append(entry)
        return changed

    @staticmethod
    def back(changed):
        for state, keys, without in changed:
            now = state.get("non_fallthrough_keys")
            if now is without:
                state["non_fallthrough_keys"] = keys
            elif type(now) is _KeySet:
                state["non_fallthrough_keys"] = now.add(OP_KEY)


HIGHER_ORDER_OPS = HigherOrderOps()


class CallWatch:
    """A profile hook while a guarded call runs: calls of forbidden Python functions (scipy.signal),
    and student code reaching into the dispatch-mode machinery the guard relies on."""

    GUARD_MODULES = ("torch.utils._python_dispatch",)

    def __init__(self, modules, names, report, origin):
        self.modules, self.names = tuple(modules), tuple(names)
        self.report, self.origin = report, origin
        self.previous = None

    def _watch(self, frame, event, arg):
        # The hot path of every guarded call: no attribute that raises an audit event (frame.f_code) here.
        if event == "call":
            module = frame.f_globals.get("__name__") or ""
            if not (module.startswith(self.GUARD_MODULES) or (self.modules and module.startswith(self.modules))):
                return
            name, caller = frame.f_code.co_name, frame.f_back
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            if module != "torch._C" and not (self.modules and module.startswith(self.modules)):
                return
            name, caller = getattr(arg, "__name__", ""), frame
        else:
            return
        if self.modules and module.startswith(self.modules) and (not self.names or any(n in name for n in self.names)):
            self.report("P", f"{module}.{name}")
        if module.startswith(self.GUARD_MODULES) or (module == "torch._C" and "dispatch" in name.lower()):
            student = self.origin.student_caller(caller)
            if student is not None:
                self.report("T", f"reached the library guard's machinery ({module}.{name}) at "
                                 f"{self.origin.where(student)}")

    def __enter__(self):
        self.previous = _getprofile()
        _setprofile(self._watch)
        return self

    def __exit__(self, *exc):
        if _getprofile() != self._watch:
            self.report("T", "the library guard's profile hook was replaced during the call")
        try:
            _setprofile(self.previous)
        except TypeError:  # a profiler that is not a Python callable (cProfile) cannot be put back
            _setprofile(None)
        return False


class Observer:
    """The process-wide operator observer: PyTorch's execution-trace observer, a global RecordFunction callback
    that sees every aten operator on every thread, whatever the dispatch keys (the guard's dispatch key is on the
    call's own thread only, and can be excluded). It costs far more than the key, so a guarded call uses it only
    once the notebook has touched a way around the key (`Tripwires`), or threads other than the kernel's own run."""

    def __init__(self, fragments, report, folder):
        self.fragments, self.report = tuple(fragments), report
        self.path = os.path.join(folder or "/tmp", f".torchgrade-ops-{os.getpid()}-{id(self)}.json")
        self.on = False

    def start(self):
        if self.on:
            return True
        if _observer_add is None or not _observer_add(self.path):
            self.report("T", "the process-wide operator observer is not available: a call that may compute on "
                             "another thread or around the guard's dispatch key cannot be checked")
            return False
        _observer_enable()
        self.on = True
        return True

    def stop(self):
        """Off; the forbidden operators it saw (reported)."""
        if not self.on:
            return []
        self.on = False
        try:
            _observer_disable()
            _observer_remove()
            with open(self.path, encoding="utf-8") as f:
                names = {str(node.get("name", "")) for node in _json_load(f).get("nodes", ())}
        except Exception as exc:
            self.report("T", f"the operator observer's record could not be read ({type_name(exc)})")
            return []
        finally:
            try:
                _unlink(self.path)
            except OSError:
                pass
        seen = []
        for name in sorted(names):
            op = name.split("::", 1)[-1].split(".", 1)[0]
            if "::" in name and name.split(".", 1)[0] not in OBJECT_MAKERS and any(  # an operator, any namespace
                    fragment in op for fragment in self.fragments):
                self.report("O", op)
                seen.append(op)
        return seen


class Guard:
    """Everything a call with `forbid` runs under, from the call to the conversion of its result.

    The guard's dispatch key always (`ForbiddenOps`); the profile hook (which costs as much as the call again)
    when a forbidden Python module is loaded, or when there is a reason to watch for tampering: the grader asked
    for it (`watch`, from what it read in the notebook's source) or the audit hook saw the notebook run code built
    at run time. The process-wide operator observer (`Observer`) once the notebook touched a way around the
    dispatch key (threads, custom operators, dispatch keys: `Flags.bypass`, set by `Tripwires`), when other
    Python threads run, or when a tensor subclass's handler may run around the key (`Tripwires.around_the_key`);
    and from the moment such a way is touched during the call itself. What the observer saw and the key did not
    is said (`missed`).
    """

    active = False  # read by AuditWatch: is a guarded call running?
    said_missed = False  # the observer saw forbidden operators the key did not (said once per kernel)
    current = None  # the guard of the call running now, for the tripwires

    def __init__(self, forbid, report, origin):
        self.forbid, self.report, self.origin = forbid or {}, report, origin
        self.ops = ForbiddenOps(self.forbid.get("ops", ()), report)
        self.observer = Observer(self.forbid.get("ops", ()), report, os.environ.get("TMPDIR"))
        modules = tuple(self.forbid.get("modules", ()))
        self.watch = None
        if self.forbid.get("watch") or Flags.suspicious or any(m in sys.modules for m in modules):
            self.watch = CallWatch(modules, self.forbid.get("names", ()), report, origin)

    def __enter__(self):
        if not self.forbid:
            return self
        self.concurrent_work()
        if Flags.bypass or self.student_threads() or self.ops.uncovered() or (  # (an operator the key cannot see:
                Tripwires.installed is not None and Tripwires.installed.around_the_key()):  # the observer sees it,
            self.observe()  # rather than the student paying for what the guard could not do)
        if self.watch is not None:
            self.watch.__enter__()
        Guard.active, Guard.current = True, self
        if not self.ops.install():
            self.report("T", "the library guard could not be installed (its dispatch key is excluded on this thread)")
        return self

    def student_threads(self):
        """Whether a Python thread other than the kernel's own (and the call's) is alive as the call starts: whoever
        started it (a library, where no tripwire saw it), the notebook may hand it work during the call (an
        executor's idle thread takes it, and no thread starts), or it may run the notebook's code (a callback it
        was given). The kernel's own threads were there before the first cell, or said so from inside themselves
        as their event loops started (`server.key_on_kernel_threads`): a thread's name, class or target, which
        the notebook can rewrite, says nothing. In a self-check no thread was
        registered as the kernel's (the call's own thread is the cell's): there, a thread counts only while it
        runs the notebook's code."""
        caller = _get_ident()  # the call's own thread: its operators pass the guard's dispatch key
        for ident, frame in _current_frames().items():
            if ident in Flags.threads or ident == caller or ident in Flags.loop_threads:
                continue
            if Flags.threads:  # a grading kernel
                return True
            for _ in range(256):
                if frame is None:
                    break
                if self.origin.is_student(frame):
                    return True
                frame = frame.f_back
        return False

    def observe(self):
        """From now until the call ends, every operator on every thread is seen."""
        if self.forbid.get("ops"):
            self.observer.start()

    def __exit__(self, *exc):
        if not self.forbid:
            return False
        try:
            if not self.ops.remove():
                self.report("T", "the library guard was removed during the call (its dispatch key or kernels)")
        finally:
            Guard.active, Guard.current = False, None
            self.missed(self.observer.stop())
            if self.watch is not None:
                self.watch.__exit__(*exc)
        return False

    def missed(self, observed):
        """Say (once per kernel) that the observer saw forbidden operators which the key, on the call's thread
        throughout, did not: they ran on another thread, or in a tensor subclass's handler."""
        if Guard.said_missed or self.ops.left_the_key:  # (the guard's own way around the key: `Onward`)
            return
        unseen = {op for op in observed if op not in self.ops.seen}
        if unseen:  # (not those the key could not be given: the guard's gap, not the notebook's doing)
            unseen -= {op_name(full) for full in self.ops.uncovered()}
        if unseen:
            Guard.said_missed = True
            names = ", ".join(sorted(unseen, key=lambda op: (op.startswith("_"), op))[:4])
            self.report("A", f"dispatch-keys: forbidden operators ran where the guard's dispatch key could not see "
                             f"them, on another thread or in a tensor subclass's handler ({names})")

    def concurrent_work(self):
        """Threads the notebook started, or live child processes, could compute outside the guard: reported
        for the instructor (a DataLoader's workers are innocent), not held against the call. Children are looked
        for (a read of /proc per thread) once the audit hook saw a process start, or native code loaded."""
        for thread in _enumerate_threads():
            target = getattr(thread, "_target", None) or getattr(type(thread), "run", None)
            code = getattr(target, "__code__", None)
            if code is not None and self.origin.is_student(_FakeFrame(code)) and thread.is_alive():
                self.report("A", f"concurrency: a thread started by the notebook ({thread.name}) ran during a "
                                 "guarded call")
        if not (Flags.children or Flags.suspicious or Flags.bypass):
            return
        try:
            children = [c for t in os.listdir("/proc/self/task")
                        for c in open(f"/proc/self/task/{t}/children").read().split()]
            live = [c for c in children if open(f"/proc/{c}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        except OSError:
            live = []
        if live:
            self.report("A", f"concurrency: {len(live)} process(es) started by the notebook ran during a guarded call")


class _FakeFrame:
    def __init__(self, code):
        self.f_code = code


class ProbeFault(Exception):
    """The probe itself failed before the student's code ran (the request, its arguments, eval()): the grader's
    fault, reported as such, never as the student's function failing."""


def guarded_call(fn, args, kwargs):
    """Call `fn`; returns (value, error, seconds). The student's exception is data for the check."""
    start = _perf_counter()
    try:
        value, error = fn(*args, **kwargs), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        value, error = None, format_error(exc)
    return value, error, _perf_counter() - start


def format_error(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "ipykernel_" in frame.filename or frame.filename.startswith("<ipython"):
            where = f" (in your code, line {frame.lineno}: {frame.line.strip()})" if frame.line else f" (line {frame.lineno})"
            break
    try:
        text = str(exc)
    except BaseException:
        text = "<unprintable>"
    return f"{type_name(exc)}: {text[:1000]}{where}"


KEPT = {}  # (class, attribute) -> {instance: value}: each of `Tripwires.ATTRIBUTES`, out of the instances' __dict__


def keep_attribute(owner, name):
    """The table that holds attribute `name` of every instance of `owner`, in place of their `__dict__`: the values
    of the instances made so far moved there, and a property of the class reading and writing it. Done once per
    process, by the zygote before it forks a kernel (`keep_attributes`): moving two thousand operators' entry points
    cost each kernel a hundredth of a second. Each kernel's tripwires then replace the property with their own."""
    kept = KEPT.get((owner, name))
    if kept is None:
        kept = KEPT[owner, name] = _weak_keys()
        for obj in existing_instances(owner):
            if name in vars(obj):
                kept[obj] = vars(obj).pop(name)
        setattr(owner, name, property(*kept_accessors(kept)))
    return kept


def kept_accessors(kept, wrap=None):
    """A property's getter (through `wrap`, if given) and setter over `kept`, as closures: a bound method of the
    table (`kept.get`) would hand it out as its `__self__`, unflagged; a closure's cells take introspection the
    source scan names (`__closure__`, `cell_contents`)."""
    def get(obj):
        value = kept.get(obj)
        return value if value is None or wrap is None else wrap(value)

    def put(obj, value):
        kept[obj] = value

    return get, put


def keep_attributes():
    for module_name, owner_name, name, *_ in Tripwires.ATTRIBUTES:
        owner = getattr(sys.modules.get(module_name), owner_name, None)
        if owner is not None:
            keep_attribute(owner, name)


def tensor_classes(tensor):
    """`tensor` and every subclass of it made so far."""
    found, pending = [tensor], [tensor]
    while pending:
        for sub in type.__subclasses__(pending.pop()):
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def existing_instances(owner):
    """The operator overloads made so far (`torch.ops.<namespace>.<name>.<overload>`, cached where they were made)."""
    if owner.__name__ != "OpOverload":
        return []
    found = []
    for namespace in list(vars(torch.ops).values()):
        if type(namespace).__name__ != "_OpNamespace":
            continue
        for packet in list(vars(namespace).values()):
            if type(packet).__name__ == "OpOverloadPacket":
                found += [o for o in list(vars(packet).values()) if isinstance(o, owner)]
    return found


class Tripwires:
    """What a notebook could use to compute outside the guard's dispatch key, wrapped before its first cell:
    starting threads, defining custom operators or registering kernels, changing the thread's dispatch keys or
    taking modes off the stack, calling an operator's kernel directly (below the key), and turning the operator
    observer off. Used from student code, each marks the kernel (`Flags.bypass`: every later guarded call is
    observed process-wide), says so to the grader once (a finding), and, in the middle of a guarded call, turns
    the observer on for the rest of it before going ahead; a kernel called directly, or dispatch keys changed,
    during a guarded call is more: the observer may not see the operator, so the call itself is reported."""

    TARGETS = (
        ("threading", "Thread.start", "concurrency", "started a thread"),
        ("_thread", "start_new_thread", "concurrency", "started a thread"),
        ("_thread", "start_joinable_thread", "concurrency", "started a thread"),
        ("torch.library", "custom_op", "custom-op", "defined a custom operator"),
        ("torch._library.custom_ops", "custom_op", "custom-op", "defined a custom operator"),
        ("torch.library", "Library", "custom-op", "defined an operator library"),
        ("torch._C", "_dispatch_library", "custom-op", "registered operator kernels"),
        ("torch._C", "_DispatchModule.impl", "custom-op", "registered an operator kernel"),
        ("torch._C", "_DispatchModule.fallback", "custom-op", "registered a fallback kernel"),
        ("torch._C", "_DispatchModule.reset", "custom-op", "removed operator kernels"),
        ("torch._C", "_ExcludeDispatchKeyGuard", "dispatch-keys", "excluded dispatch keys"),
        ("torch._C", "ExcludeDispatchKeyGuard", "dispatch-keys", "excluded dispatch keys"),
        ("torch._C", "_SetExcludeDispatchKeyGuard", "dispatch-keys", "excluded dispatch keys"),
        ("torch._C", "_ForceDispatchKeyGuard", "dispatch-keys", "set the dispatch keys"),
        ("torch._C", "_dispatch_tls_set_dispatch_key_excluded", "dispatch-keys", "excluded a dispatch key"),
        ("torch._C", "_dispatch_tls_set_dispatch_key_included", "dispatch-keys", "changed the included dispatch keys"),
        ("torch._C", "_dynamo_restore_local_dispatch_key_set", "dispatch-keys", "set the dispatch keys"),
        ("torch._C", "_PreserveDispatchKeyGuard", "dispatch-keys", "saved the thread's dispatch keys to restore them"),
        ("torch._C", "_IncludeDispatchKeyGuard", "dispatch-keys", "included dispatch keys"),
        ("torch._C", "_RestorePythonTLSSnapshot", "dispatch-keys", "restored a dispatch-key snapshot"),
        ("torch._C", "_EnablePythonDispatcher", "dispatch-keys", "turned the Python dispatcher on"),
        ("torch._dispatch.python", "enable_python_dispatcher", "dispatch-keys", "turned the Python dispatcher on"),
        ("torch._C", "_DisableTorchDispatch", "dispatch-keys", "disabled torch dispatch"),
        ("torch._C", "_pop_torch_dispatch_stack", "dispatch-keys", "took a mode off the dispatch stack"),
        ("torch._C", "_set_dispatch_mode", "dispatch-keys", "set a dispatch mode"),
        ("torch._C", "_dispatch_call_boxed", "dispatch-keys", "called an operator's kernel directly"),
        ("torch._C", "_dispatch_get_computed_kernel_for_dispatch_key", "dispatch-keys",
         "took an operator's kernel to call it directly"),
        ("torch._C", "_SafeKernelFunction.call_boxed", "dispatch-keys", "called an operator's kernel directly"),
        ("torch._C", "_DispatchOperatorHandle.redispatch_boxed", "dispatch-keys", "redispatched an operator"),
        ("torch._C", "_dispatch_find_schema_or_throw", "dispatch-keys", "took an operator's handle"),
        ("torch._C", "_get_operation_overload", "dispatch-keys", "took an operator's kernels"),
        ("torch._ops", "OpOverload.redispatch", "dispatch-keys", "redispatched an operator"),
        ("torch._C._profiler", "_disable_execution_trace_observer", "dispatch-keys", "turned the operator observer off"),
        ("torch._C._profiler", "_remove_execution_trace_observer", "dispatch-keys", "removed the operator observer"),
    )
    # Each operator object holds its kernel-by-key entry point (`torch.ops.aten.conv2d.default._op_dk`): a property
    # of the class in its place hands out a tripwire around it.
    ATTRIBUTES = (("torch._ops", "OpOverload", "_op_dk", "dispatch-keys", "called an operator's kernel directly"),)
    DURING_CALL = ("dispatch-keys",)  # what, during a guarded call, the observer may not see: the call is reported
    # During a guarded call a thread started by anyone counts (a library the notebook hands a callback to, asyncio's
    # executor): nothing the grader runs starts one, and the thread is a way around the key however it is reached.
    ANY_CALLER_DURING_CALL = ("concurrency",)

    installed = None  # the kernel's own, once installed

    def __init__(self, report, origin):
        self.report, self.origin, self.said = report, origin, set()
        self.handlers = {}  # tensor class -> its own __torch_dispatch__ (or None) as it was made
        self.made = []  # tensor subclasses the notebook made

    def install(self):
        for module_name, attribute, kind, what in self.TARGETS:
            module = sys.modules.get(module_name)
            owner_name, _, name = attribute.rpartition(".")
            owner = getattr(module, owner_name) if module is not None and owner_name else module
            original = getattr(owner, name, None) if owner is not None else None
            if original is None:
                continue
            try:
                setattr(owner, name, self.wrap(original, kind, f"{what} ({module_name}.{attribute})"))
            except (AttributeError, TypeError):
                pass
        self.watch_subclasses()
        for module_name, owner_name, name, kind, what in self.ATTRIBUTES:
            owner = getattr(sys.modules.get(module_name), owner_name, None)
            if owner is not None:
                try:
                    setattr(owner, name, self.wrapped_attribute(owner, name, kind, f"{what} ({owner_name}.{name})"))
                except (AttributeError, TypeError):
                    pass

    def watch_subclasses(self):
        """A tensor subclass with a `__torch_dispatch__` of its own: PyTorch runs that handler with the keys above
        Python excluded, the guard's among them, so what it computes passes the key unseen. Defining one is a way
        around the key, seen as the class is made (`torch.Tensor.__init_subclass__`): from then on the observer
        watches, as it does once a custom operator is defined."""
        tensor = getattr(sys.modules.get("torch"), "Tensor", None)
        if tensor is None or "__init_subclass__" in vars(tensor):
            return
        tripped, handlers, made, origin, plumbing = self.tripped, self.handlers, self.made, self.origin, self.PLUMBING
        for cls in tensor_classes(tensor):  # each class's own handler as it was made (here: before the first cell)
            handlers[cls] = cls.__dict__.get("__torch_dispatch__")

        def __init_subclass__(cls, **kwargs):
            handlers[cls] = cls.__dict__.get("__torch_dispatch__")
            mro = cls.__mro__
            if any("__torch_dispatch__" in vars(k) for k in mro[:mro.index(tensor)]):
                tripped("custom-op", "defined a tensor subclass with a __torch_dispatch__ of its own")
            elif origin.student_caller(_getframe(1), through=plumbing) is not None:  # a handler may come later
                made.append(cls)
                if Guard.current is not None:  # (during this call, even)
                    Guard.current.observe()
            super(tensor, cls).__init_subclass__(**kwargs)

        tensor.__init_subclass__ = classmethod(__init_subclass__)
        Tripwires.installed = self

    def around_the_key(self):
        """Whether a tensor subclass's handler may compute around the key in the next guarded call: one was attached
        to a class (or replaced) after the class was made, which no tripwire sees (reported once, and from then on
        every guarded call is observed), or the notebook made a tensor subclass, to which it may attach one during
        the call and take it off again before the call returns."""
        changed = [cls for cls, handler in list(self.handlers.items()) if cls.__dict__.get("__torch_dispatch__")
                   is not handler]
        for cls in changed:
            what = f"gave the tensor subclass {type.__dict__['__qualname__'].__get__(cls)} a __torch_dispatch__ after " \
                   "it was made"
            Flags.bypass = True
            self.handlers[cls] = cls.__dict__.get("__torch_dispatch__")
            if what not in self.said:
                self.said.add(what)
                self.report("A", f"custom-op: the notebook {what}")
        return bool(changed or self.made or Flags.bypass)

    def wrapped_attribute(self, owner, name, kind, what):
        """A property in place of each instance's attribute `name`: reading it gives a tripwire around the value, which
        is kept out of the instance's `__dict__` (where `vars(op)[name]` would hand it out), those of the instances
        made already included (`keep_attribute`: moved by the zygote already, as a rule)."""
        wrap = self.wrap
        return property(*kept_accessors(keep_attribute(owner, name), lambda value: wrap(value, kind, what)))

    def wrap(self, original, kind, what):
        tripped = self.tripped

        def tripwire(*args, **kwargs):
            tripped(kind, what)
            return original(*args, **kwargs)

        tripwire.__name__ = getattr(original, "__name__", "tripwire")
        tripwire.__qualname__ = getattr(original, "__qualname__", tripwire.__name__)
        tripwire.__doc__ = getattr(original, "__doc__", None)
        tripwire.__wrapped_by_torchgrade__ = True
        return tripwire

    PLUMBING = ("contextlib", "functools", "inspect", "threading", "concurrent", "_thread", "multiprocessing")

    def tripped(self, kind, what):
        # the notebook's own doing (through thread pools and context managers), not a library's inner workings
        caller = _getframe(2)
        frame = self.origin.student_caller(caller, through=self.PLUMBING)
        if frame is None and self.origin.is_grader(caller):  # a copy of the grader's code the notebook imported: the
            frame = self.origin.student_caller(caller, through=None) or caller  # kernel's own never calls a tripwire
        if frame is None and Guard.current is not None and kind in self.ANY_CALLER_DURING_CALL:
            frame = self.origin.student_caller(caller, through=None) or caller
        if frame is None:
            return
        Flags.bypass = True
        if Guard.current is not None:
            Guard.current.observe()
            if kind in self.DURING_CALL:
                self.report("T", f"the call {what} at {self.origin.where(frame)}")
        if what not in self.said:
            self.said.add(what)
            self.report("A", f"{kind}: the notebook {what} at {self.origin.where(frame)}")
