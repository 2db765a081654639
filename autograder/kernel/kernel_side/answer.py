"""Answering one probe request against the student's namespace: a value, or a call with grader-made arguments."""

from __future__ import annotations

import contextlib

import torch
from .refs import TAG
from .plain import to_plain, type_name
from .guard import Guard, ProbeFault, format_error, guarded_call
from .wire import TooLarge

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


def response(missing=False, error=None, value=None, type=None, seconds=0.0, requires_grad=False, **extra):
    """`requires_grad`: the value is a tensor that requires grad (it crosses detached; a check may say what holding
    on to its graph costs)."""
    return {TAG: "response", "missing": missing, "error": error, "value": value, "type": type,
            "seconds": float(seconds), "requires_grad": bool(requires_grad), **extra}


def answer(request, namespace, report, origin):
    """Carry out one probe request against `namespace`; always returns a plain response."""
    try:
        obj = resolve(namespace, request["target"])
    except Exception as exc:  # a missing name is an answer, not a failure
        return response(missing=True, error=format_error(exc))
    with Guard(request.get("forbid"), report, origin):
        if request["op"] == "value":
            value, error = student_plain(obj, origin)
            return response(value=value, error=error, type=type_name(obj) if error is None else None,
                            requires_grad=requires_grad(value))
        device = request.get("device")
        if device == "model":  # the student's trained model decides where inputs go
            device = module_device(obj)
        was_training = obj.training if isinstance(obj, torch.nn.Module) else None
        if request.get("eval_mode") and was_training is not None:
            try:
                obj.eval()
            except Exception as exc:
                raise ProbeFault(f"eval() of {request['target']} failed ({format_error(exc)})") from None
        try:
            return call_and_answer(obj, request, namespace, device, origin)
        finally:  # the student's model keeps its mode (a self-check runs in the student's own process)
            if was_training is not None:
                obj.train(was_training)


def student_plain(value, origin):
    """`to_plain` of a value of the student's, and None; or None and why it cannot be read, where reading it ran
    student code that raised (a list subclass's `__iter__`, a dict's `items`): the student's answer, not the probe's
    failure. A failure of the reduction itself, outside student code, stays the probe's."""
    try:
        return to_plain(value), None
    except TooLarge:
        raise
    except Exception as exc:
        frames, tb = [], exc.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        student = [i for i, frame in enumerate(frames) if origin.is_student(frame)]
        if not student or any(origin.is_grader(frame) for frame in frames[student[-1] + 1:]):
            raise  # no student code, or the grader's own code raised below it (a hook): the probe's failure
        return None, f"returned a value that could not be read: {format_error(exc)}"


def call_and_answer(obj, request, namespace, device, origin):
    try:
        args = materialise(request.get("args", ()), namespace, device)
        kwargs = materialise(request.get("kwargs", {}), namespace, device)
    except NameError as exc:  # `ref(name)` of a name the student did not define: the student's answer
        return response(missing=True, error=format_error(exc))
    except Exception as exc:
        raise ProbeFault(f"the grader's arguments could not be prepared ({format_error(exc)})") from None
    seed = request.get("seed")
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    grad = torch.no_grad() if request.get("no_grad") else contextlib.nullcontext()
    with rng, grad:
        if seed is not None:
            torch.manual_seed(seed)
        value, error, seconds = guarded_call(obj, args, kwargs)
        then = request.get("then")
        if then and error is None:  # calls on what the first call returned: obj(...).step(x), ...
            made, results = value, []
            for method, m_args, m_kwargs in then:
                fn = made if method is None else getattr(made, method, None)
                if fn is None:
                    error = f"AttributeError: {type_name(made)} has no method {method!r}"
                    break
                result, error, more = guarded_call(fn, materialise(m_args, namespace, device),
                                                   materialise(m_kwargs, namespace, device))
                seconds += more
                if error is not None:
                    break
                results.append(result)
            value = results
        extra = {"args": to_plain(args)} if request.get("return_args") else {}
        plain, unreadable = student_plain(value, origin)
        error = error or unreadable
        return response(error=error, value=plain, seconds=seconds, type=type_name(value) if error is None else None,
                        requires_grad=error is None and requires_grad(plain), **extra)


def requires_grad(plain):
    """Whether a value, as `to_plain` reduced it, is a tensor that requires grad (read from the reduction: asking the
    value again would run a tensor subclass's code outside it)."""
    return type(plain) is dict and plain.get(TAG) == "tensor" and plain.get("requires_grad") is True


def module_device(obj):
    if isinstance(obj, torch.nn.Module):
        for tensor in obj.parameters():
            return tensor.device
        for tensor in obj.buffers():
            return tensor.device
    return None
