"""The one codec for values crossing the kernel boundary.

Both directions are written by `kernel_side.wire`. Requests (grader → kernel) are grader-made: a pickle
with the tensors' raw bytes after it. Responses (kernel → grader) are student-made bytes and are treated as
hostile: a size limit, JSON records that can build nothing but plain values and plain tensors copied from
bytes that fit their dtype and shape, then a strict decoder that accepts exactly the tagged plain data
`kernel_side.to_plain` produces, bounded in depth, size and string length. Anything else is a `ProbeError`,
which fails the one check that asked, and is reported as an integrity finding.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import ProbeError
from .frames import MAX_RESPONSE_BYTES
from .kernel_side.wire import WireError, answer_decode, wire_encode

TAG = "__tg__"
MAX_NODES = 2_000_000
MAX_DEPTH = 12


@dataclass(frozen=True)
class Opaque:
    """A student value the codec does not carry: only its type and repr cross."""

    type: str
    repr: str


@dataclass(frozen=True)
class ModuleSnapshot:
    """What crosses for an `nn.Module`: class, mode, state, hook counts, submodule types, sizes."""

    type: str
    training: bool
    state: dict[str, torch.Tensor]
    hooks: dict[str, int]
    modules: dict[str, str]  # name (as in named_modules) → qualified class name
    n_params: int  # parameters as model.parameters() yields them (shared ones once)
    n_trainable: int


def ref(name: str) -> dict[str, str]:
    """An argument that stands for a student object, looked up in the kernel."""
    return {"__ref__": name}


def encode_request(request: dict[str, Any]) -> bytes:
    return wire_encode(request)


MAX_STRING = 100_000  # characters of a string in an answer (a type name or an opaque repr: far fewer)
MAX_NAME = 1_000
DEVICE = re.compile(r"(cpu|cuda|mps|xpu|meta|hip|privateuseone)(:\d{1,4})?")
DTYPES = {name: getattr(torch, name) for name in (
    "float16", "float32", "float64", "bfloat16", "complex32", "complex64", "complex128", "uint8", "uint16", "uint32",
    "uint64", "int8", "int16", "int32", "int64", "bool", "float8_e4m3fn", "float8_e5m2", "qint8", "quint8", "qint32")
    if isinstance(getattr(torch, name, None), torch.dtype)}  # looked up by name only here: no lazy torch import


def decode_response(data: bytes) -> dict[str, Any]:
    """A probe response from the kernel, or `ProbeError` saying why it cannot be one."""
    try:
        return _decode_response(data)
    except ProbeError:
        raise
    except Exception as exc:  # whatever a hostile answer makes the decoders raise: never the grader's failure
        raise ProbeError(f"malformed answer from the kernel ({type(exc).__name__}: {str(exc)[:200]})") from None


def _decode_response(data: bytes) -> dict[str, Any]:
    raw = load_untrusted(data)
    if not (type(raw) is dict and raw.get(TAG) == "response"):
        raise ProbeError("the kernel's answer is not a probe response")
    out: dict[str, Any] = {}
    expect(raw, "missing", bool)
    expect(raw, "error", (str, type(None)))
    expect(raw, "type", (str, type(None)))
    seconds = expect(raw, "seconds", (float, int))
    if not (type(seconds) is float and math.isfinite(seconds) and 0 <= seconds < 1e9) and not (
            type(seconds) is int and 0 <= seconds < 10**9):
        raise ProbeError("malformed answer from the kernel: field 'seconds'")
    for key, most in (("error", MAX_STRING), ("type", MAX_NAME)):
        if raw[key] is not None and len(raw[key]) > most:
            raise ProbeError(f"malformed answer from the kernel: field {key!r} over {most} characters")
    devices: list[str] = []
    budget = Budget()
    out.update(missing=raw["missing"], error=raw["error"], type=raw["type"], seconds=float(seconds),
               value=from_plain(raw.get("value"), devices, budget), devices=devices,
               requires_grad=expect(raw, "requires_grad", bool) if "requires_grad" in raw else False)
    if "args" in raw:
        out["args"] = from_plain(raw["args"], None, budget)
    return out


def load_untrusted(data: bytes) -> Any:
    if len(data) > MAX_RESPONSE_BYTES:
        raise ProbeError(f"the kernel's answer is too large ({len(data) // 2**20} MiB; "
                         f"at most {MAX_RESPONSE_BYTES // 2**20} MiB)")
    try:
        return answer_decode(data)
    except (WireError, RecursionError, MemoryError) as exc:
        raise ProbeError(f"unreadable answer from the kernel ({type(exc).__name__}: {str(exc)[:200]})") from None


class Budget:
    """Bounds the work of decoding one answer (shared sub-objects are visited every time they appear)."""

    def __init__(self, nodes: int = MAX_NODES):
        self.left = nodes

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ProbeError("the kernel's answer is too large to decode")


def expect(raw: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ProbeError(f"malformed answer from the kernel: field {key!r}")
    return value


def from_plain(obj: Any, devices: list[str] | None = None, budget: Budget | None = None, depth: int = 0) -> Any:
    """Undo `kernel_side.to_plain`, strictly; records the devices of returned tensors in `devices`."""
    budget = budget or Budget()
    budget.spend()
    if depth > MAX_DEPTH:
        raise ProbeError("the kernel's answer is nested too deeply")
    if type(obj) is str and len(obj) > MAX_STRING:
        raise ProbeError(f"the kernel's answer holds a string over {MAX_STRING} characters")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is list:
        return [from_plain(x, devices, budget, depth + 1) for x in obj]
    if type(obj) is tuple:
        return tuple(from_plain(x, devices, budget, depth + 1) for x in obj)
    if type(obj) is dict:
        decoder = DECODERS.get(obj.get(TAG)) if isinstance(obj.get(TAG), str) else None
        if decoder is None:
            raise ProbeError("malformed answer from the kernel: an untagged or unknown mapping")
        return decoder(obj, devices, budget, depth)
    raise ProbeError(f"malformed answer from the kernel: a bare {type(obj).__name__}")


def plain_tensor(obj: dict, key: str) -> torch.Tensor:
    """A record's tensor: plain, dense, on the CPU, without gradient or hooks (as the wire builds them)."""
    data = expect(obj, key, torch.Tensor)
    if (type(data) is not torch.Tensor or data.layout != torch.strided or data.device.type != "cpu"
            or data.requires_grad or data._backward_hooks or not data.is_contiguous()):
        raise ProbeError("malformed answer from the kernel: a tensor not as the wire builds it")
    return data


def _tensor(obj, devices, budget, depth):
    data = plain_tensor(obj, "data")
    device = expect(obj, "device", str)
    expect(obj, "requires_grad", bool)
    if not DEVICE.fullmatch(device):
        raise ProbeError("malformed answer from the kernel: a tensor's device")
    if devices is not None:
        devices.append(device)
    return data


def _size(obj, devices, budget, depth):
    dims = expect(obj, "dims", list)
    if len(dims) > 64 or not all(type(d) is int and 0 <= d < 2**63 for d in dims):
        raise ProbeError("malformed answer from the kernel: a size's dimensions")
    return torch.Size(dims)


def _dtype(obj, devices, budget, depth):
    name = expect(obj, "name", str).removeprefix("torch.")[:MAX_NAME]
    return DTYPES.get(name) or Opaque("torch.dtype", name)


def _dict(obj, devices, budget, depth):
    items = expect(obj, "items", list)
    out = {}
    for item in items:
        if not (type(item) is list and len(item) == 2 and type(item[0]) is str):
            raise ProbeError("malformed answer from the kernel: a dict item")
        out[item[0]] = from_plain(item[1], devices, budget, depth + 1)
    return out


def _ndarray(obj, devices, budget, depth):
    data = plain_tensor(obj, "data")
    if data.dtype not in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                          torch.float32, torch.float64):  # what to_plain sends of an ndarray (kinds b, i, u, f)
        raise ProbeError("malformed answer from the kernel: an array's dtype")
    return data.numpy()


def _module(obj, devices, budget, depth):
    state = expect(obj, "state", dict)
    hooks = expect(obj, "hooks", dict)
    modules = expect(obj, "modules", dict)
    if not all(type(k) is str and type(v) is torch.Tensor for k, v in state.items()):
        raise ProbeError("malformed answer from the kernel: a module's state")
    for key in state:
        plain_tensor(state, key)
    counts = (expect(obj, "n_params", int), expect(obj, "n_trainable", int), *hooks.values())
    if not all(type(k) is str and type(v) is int for k, v in hooks.items()):
        raise ProbeError("malformed answer from the kernel: a module's hooks")
    if not all(type(k) is str and type(v) is str for k, v in modules.items()):
        raise ProbeError("malformed answer from the kernel: a module's submodules")
    if not all(type(c) is int and 0 <= c < 2**63 for c in counts):
        raise ProbeError("malformed answer from the kernel: a module's counts")
    if len(expect(obj, "type", str)) > MAX_NAME or any(len(k) > MAX_NAME or len(v) > MAX_NAME for k, v in modules.items()):
        raise ProbeError("malformed answer from the kernel: a module's names")
    budget.left -= len(state) + len(modules) + len(hooks)
    return ModuleSnapshot(expect(obj, "type", str), expect(obj, "training", bool), state, hooks, modules,
                          expect(obj, "n_params", int), expect(obj, "n_trainable", int))


def _dataframe(obj, devices, budget, depth):
    import pandas

    columns = expect(obj, "columns", list)
    data = {}
    for column in columns:
        if not (type(column) is list and len(column) == 2 and type(column[0]) is str and type(column[1]) is list):
            raise ProbeError("malformed answer from the kernel: a data frame column")
        data[column[0]] = from_plain(column[1], None, budget, depth + 1)
    try:
        return pandas.DataFrame(data)
    except ValueError as exc:
        raise ProbeError(f"malformed answer from the kernel: a data frame ({exc})") from exc


def _opaque(obj, devices, budget, depth):
    kind, text = expect(obj, "type", str), expect(obj, "repr", str)
    if len(kind) > MAX_NAME or len(text) > 4 * MAX_NAME:
        raise ProbeError("malformed answer from the kernel: an opaque value's type or repr")
    return Opaque(kind, text)


DECODERS: dict[str, Callable[..., Any]] = {
    "tensor": _tensor, "size": _size, "dtype": _dtype, "dict": _dict, "ndarray": _ndarray, "module": _module,
    "dataframe": _dataframe, "opaque": _opaque,
}
