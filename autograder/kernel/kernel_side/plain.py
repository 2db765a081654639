"""Plain data: any value reduced to tagged lists, dicts, numbers, strings and tensors for the codec."""

from __future__ import annotations


import torch
from .refs import MAX_DEPTH, MAX_REPR, TAG
from .wire import MAX_VALUES, WIRE_DTYPES, too_many_values

def type_name(obj):
    cls = type(obj)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def opaque(obj):
    try:
        text = repr(obj)
    except BaseException as exc:  # a student __repr__ may raise anything
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = f"<unrepresentable {type_name(obj)}>"
    return {TAG: "opaque", "type": type_name(obj), "repr": str(text)[:MAX_REPR]}


def plain_tensor(t):
    if str(t.dtype) not in WIRE_DTYPES:  # a quantized tensor: it crosses as what it is, not its values
        raise TypeError(f"no wire format for {t.dtype}")
    requires_grad = bool(t.requires_grad)
    t = t.detach().as_subclass(torch.Tensor)
    return {TAG: "tensor", "data": t.to("cpu").clone().contiguous(), "device": t.device.type,
            "requires_grad": requires_grad}


class _Values:
    """How many more values one answer may hold: counted as they are reduced, so that a value shared many times
    over (a list of a thousand references to a list of a thousand lists...) is refused at once, not walked."""

    def __init__(self, left=MAX_VALUES):
        self.left = left

    def take(self):
        self.left -= 1
        if self.left < 0:
            raise too_many_values()


def to_plain(obj, depth=0, values=None):
    """Reduce a value to tagged plain data: every container the codec decodes carries its tag, so a
    student's dict can never pass for a tensor, a module or anything else. At most `MAX_VALUES` items
    (`TooLarge` beyond)."""
    if values is None:
        values = _Values()
    values.take()
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if depth > MAX_DEPTH:
        return opaque(obj)
    if isinstance(obj, torch.Tensor):
        try:
            return plain_tensor(obj)
        except Exception:  # sparse, quantized, meta... tensors cross as what they are, not their values
            return opaque(obj)
    if isinstance(obj, torch.Size):
        return {TAG: "size", "dims": [int(d) for d in obj]}
    if isinstance(obj, torch.nn.Module):
        return plain_module(obj)
    if isinstance(obj, torch.dtype):
        return {TAG: "dtype", "name": str(obj)}
    if isinstance(obj, (bool, int, float, str)):  # subclasses (IntEnum, numpy.float64's float base...)
        return _builtin_value(obj)
    if isinstance(obj, list):
        return [to_plain(x, depth + 1, values) for x in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(x, depth + 1, values) for x in obj)
    if isinstance(obj, dict):
        return {TAG: "dict", "items": [[str(k), to_plain(v, depth + 1, values)] for k, v in obj.items()]}
    module = type(obj).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy

        if isinstance(obj, numpy.ndarray) and obj.dtype.kind in "biuf":
            return {TAG: "ndarray", "data": torch.from_numpy(numpy.ascontiguousarray(obj)).clone()}
        if isinstance(obj, numpy.generic) and obj.dtype.kind in "biuf":
            return _builtin_value(obj.item())
    if (module == "pandas" or module.startswith("pandas.")) and type(obj).__name__ == "DataFrame":
        if obj.size > values.left:  # refused before its columns are made lists
            raise too_many_values()
        return {TAG: "dataframe", "columns": [[str(c), to_plain(list(obj[c]), depth + 1, values)] for c in obj.columns]}
    return opaque(obj)


def _builtin_value(obj):
    for kind in (bool, int, float, str):
        if isinstance(obj, kind):
            return kind(obj)
    return opaque(obj)


def plain_module(module):
    return {
        TAG: "module",
        "type": type_name(module),
        "training": bool(module.training),
        "state": {str(k): v.detach().as_subclass(torch.Tensor).to("cpu").clone()
                  for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)},
        "hooks": hook_counts(module),
        "modules": {str(name): type_name(m) for name, m in module.named_modules()},
        "n_params": int(sum(p.numel() for p in module.parameters())),
        "n_trainable": int(sum(p.numel() for p in module.parameters() if p.requires_grad)),
    }


def hook_counts(module):
    counts = {"forward": 0, "forward_pre": 0, "backward": 0}
    for m in module.modules():
        counts["forward"] += len(m._forward_hooks)
        counts["forward_pre"] += len(m._forward_pre_hooks)
        counts["backward"] += len(m._backward_hooks)
    return counts
