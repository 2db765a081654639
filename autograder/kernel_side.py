"""Code that runs next to student code: in the grading kernel and in a student's self-check.

The grader never imports this module into a kernel. It sends this file's source with each
probe and executes it in a fresh private namespace, so student code that replaced modules
in `sys.modules` cannot swap the probe for its own. The file must stay self-contained:
standard library and torch only, no relative imports.

A probe request (written by the grader, decoded here with a full unpickler: the bytes are
the grader's own) names an operation on the student's namespace. The response is reduced
to plain data (tensors, numbers, strings, lists, tuples, dicts) so that the grader can
decode it with `torch.load(weights_only=True)` and never unpickles student-made objects.
"""

from __future__ import annotations

import sys
import time
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MAX_REPR = 300


class ForbiddenOps(TorchDispatchMode):
    """Records every aten operator whose name contains one of the forbidden fragments.

    Works at the dispatcher, below every alias a student might hold (`F.conv2d`, `nn.Conv2d`,
    `torch.conv2d`, a saved reference to any of them), since all of them end up here.
    """

    def __init__(self, fragments):
        super().__init__()
        self.fragments = tuple(fragments)
        self.used = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket.__name__)
        if any(fragment in name for fragment in self.fragments) and name not in self.used:
            self.used.append(name)
        return func(*args, **(kwargs or {}))


class ForbiddenPython:
    """Records calls of Python-level functions from forbidden modules (e.g. scipy.signal)."""

    def __init__(self, modules, names):
        self.modules = tuple(modules)
        self.names = tuple(names)
        self.used = []
        self.previous = None

    def _watch(self, frame, event, arg):
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            name = frame.f_code.co_name
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or ""
            name = getattr(arg, "__name__", "")
        else:
            return
        if module.startswith(self.modules) and any(n in name for n in self.names):
            label = f"{module}.{name}"
            if label not in self.used:
                self.used.append(label)

    def __enter__(self):
        active = any(m in sys.modules for m in self.modules)
        if active:
            self.previous = sys.getprofile()
            sys.setprofile(self._watch)
        self.active = active
        return self

    def __exit__(self, *exc):
        if self.active:
            sys.setprofile(self.previous)
        return False


def guarded_call(fn, args, kwargs, forbid):
    """Call `fn`, recording forbidden library use; returns (value, error, forbidden, seconds)."""
    ops = ForbiddenOps(forbid.get("ops", ()))
    py = ForbiddenPython(forbid.get("modules", ()), forbid.get("names", ()))
    start = time.perf_counter()
    value, error = None, None
    try:
        if forbid:
            with ops, py:
                value = fn(*args, **kwargs)
        else:
            value = fn(*args, **kwargs)
    except BaseException as exc:  # the student's exception is data for the check
        if isinstance(exc, KeyboardInterrupt):
            raise
        error = format_error(exc)
    return value, error, ops.used + py.used, time.perf_counter() - start


def format_error(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if frame.filename != "<torchgrade-probe>" and ("ipykernel_" in frame.filename or frame.filename.startswith("<ipython")):
            where = f" (in your code, line {frame.lineno}: {frame.line.strip()})" if frame.line else f" (line {frame.lineno})"
            break
    return f"{type(exc).__name__}: {exc}{where}"


def type_name(obj):
    cls = type(obj)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def to_plain(obj, depth=0):
    """Reduce a value to data that `torch.load(weights_only=True)` accepts."""
    if depth > 6:
        return {"__repr__": repr(obj)[:MAX_REPR], "__type__": type_name(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return {"__tensor__": obj.detach().to("cpu").clone(), "device": obj.device.type,
                "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, torch.Size):
        return {"__size__": tuple(int(d) for d in obj)}
    if isinstance(obj, torch.nn.Module):
        return {
            "__module__": type_name(obj),
            "training": bool(obj.training),
            "state": {k: v.detach().to("cpu").clone() for k, v in obj.state_dict().items()},
            "hooks": hook_counts(obj),
            "modules": {name: type_name(m) for name, m in obj.named_modules()},
            "n_params": sum(p.numel() for p in obj.parameters()),
            "n_trainable": sum(p.numel() for p in obj.parameters() if p.requires_grad),
        }
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj)}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(x, depth + 1) for x in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {str(k): to_plain(v, depth + 1) for k, v in obj.items()}
    module = type(obj).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy

        if isinstance(obj, numpy.ndarray):
            return {"__ndarray__": torch.from_numpy(numpy.ascontiguousarray(obj)).clone()}
        if isinstance(obj, numpy.generic):
            return obj.item()
    if (module == "pandas" or module.startswith("pandas.")) and type(obj).__name__ == "DataFrame":
        return {"__dataframe__": {str(c): to_plain(list(obj[c]), depth + 1) for c in obj.columns}}
    return {"__repr__": repr(obj)[:MAX_REPR], "__type__": type_name(obj)}


def hook_counts(module):
    counts = {"forward": 0, "forward_pre": 0, "backward": 0}
    for m in module.modules():
        counts["forward"] += len(m._forward_hooks)
        counts["forward_pre"] += len(m._forward_pre_hooks)
        counts["backward"] += len(m._backward_hooks)
    return counts


def resolve(namespace, target):
    """Look up a dotted name (`model`, `model.fc`, `EarlyStopping`) in the student's namespace."""
    head, *rest = target.split(".")
    if head not in namespace:
        raise NameError(f"name {head!r} is not defined")
    obj = namespace[head]
    for part in rest:
        obj = getattr(obj, part)
    return obj


def materialise(obj, namespace, device):
    """Replace {"__ref__": name} markers by student objects; move tensors and modules to `device`."""
    if isinstance(obj, dict) and set(obj) == {"__ref__"}:
        return resolve(namespace, obj["__ref__"])
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return obj.to(device) if device else obj
    if isinstance(obj, list):
        return [materialise(x, namespace, device) for x in obj]
    if isinstance(obj, tuple):
        return tuple(materialise(x, namespace, device) for x in obj)
    if isinstance(obj, dict):
        return {k: materialise(v, namespace, device) for k, v in obj.items()}
    return obj


def answer(request, namespace):
    """Carry out one probe request against `namespace`; always returns a plain response."""
    op = request["op"]
    target = request["target"]
    try:
        obj = resolve(namespace, target)
    except Exception as exc:  # a missing name is an answer, not a failure
        return {"missing": True, "error": format_error(exc), "value": None, "forbidden": [], "seconds": 0.0,
                "type": None}
    if op == "value":
        return {"missing": False, "error": None, "value": to_plain(obj), "forbidden": [], "seconds": 0.0,
                "type": type_name(obj)}
    device = request.get("device")
    if device == "model":  # the student's trained model decides where inputs go
        device = module_device(obj)
    was_training = obj.training if isinstance(obj, torch.nn.Module) else None
    if request.get("eval_mode") and was_training is not None:
        obj.eval()
    try:
        return call_and_answer(obj, request, namespace, device)
    finally:  # the student's model keeps its mode (a self-check runs in the student's own process)
        if was_training is not None:
            obj.train(was_training)


def call_and_answer(obj, request, namespace, device):
    args = materialise(request.get("args", ()), namespace, device)
    kwargs = materialise(request.get("kwargs", {}), namespace, device)
    seed = request.get("seed")
    rng = torch.random.fork_rng(devices=[]) if seed is not None else _Null()  # the caller's RNG state is kept
    context = torch.no_grad() if request.get("no_grad") else _Null()
    forbid = request.get("forbid") or {}
    with rng, context:
        if seed is not None:
            torch.manual_seed(seed)
        value, error, forbidden, seconds = guarded_call(obj, args, kwargs, forbid)
        then = request.get("then")
        if then and error is None:  # calls on what the first call returned: obj(...).step(x), ...
            made, results = value, []
            for method, m_args, m_kwargs in then:
                fn = made if method is None else getattr(made, method, None)
                if fn is None:
                    error = f"AttributeError: {type_name(made)} has no method {method!r}"
                    break
                m_args = materialise(m_args, namespace, device)
                result, error, used, more = guarded_call(fn, m_args, m_kwargs, forbid)
                forbidden, seconds = forbidden + used, seconds + more
                if error is not None:
                    break
                results.append(result)
            value = results
    response = {"missing": False, "error": error, "value": to_plain(value), "forbidden": forbidden,
                "seconds": seconds, "type": type_name(value) if error is None else None}
    if request.get("return_args"):
        response["args"] = to_plain(args)
    return response


def module_device(obj):
    if isinstance(obj, torch.nn.Module):
        for tensor in obj.parameters():
            return tensor.device
        for tensor in obj.buffers():
            return tensor.device
    return None


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def serve(request_path, response_path, namespace):
    try:
        request = torch.load(request_path, weights_only=False)
        response = answer(request, namespace)
    except Exception as exc:  # report the probe's own failure to the grader
        response = {"missing": False, "error": f"probe failed: {format_error(exc)}", "value": None,
                    "forbidden": [], "seconds": 0.0, "type": None}
    torch.save(response, response_path)


if "_TORCHGRADE_REQUEST" in globals():
    serve(_TORCHGRADE_REQUEST, _TORCHGRADE_RESPONSE, _TORCHGRADE_NAMESPACE)  # noqa: F821
