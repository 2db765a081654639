"""The one codec for values crossing the kernel boundary.

Both directions are written by `kernel_side.wire`: a pickle with the tensors' raw bytes after it.
Requests (grader → kernel) are grader-made. Responses (kernel → grader) are student-made bytes and
are treated as hostile: a size limit, a reader that builds no object of any class (no global is
resolved; tensors only from references that fit the bytes sent with them), then a strict decoder
that accepts exactly the tagged plain data `kernel_side.to_plain` produces, bounded in depth and size. Anything else is a `ProbeError`,
which fails the one check that asked, and is reported as an integrity finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import ProbeError
from .kernel_side.wire import WireError, wire_decode, wire_encode

TAG = "__tg__"
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
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


def decode_response(data: bytes) -> dict[str, Any]:
    """A probe response from the kernel, or `ProbeError` saying why it cannot be one."""
    raw = load_untrusted(data)
    if not (type(raw) is dict and raw.get(TAG) == "response"):
        raise ProbeError("the kernel's answer is not a probe response")
    out: dict[str, Any] = {}
    expect(raw, "missing", bool)
    expect(raw, "error", (str, type(None)))
    expect(raw, "type", (str, type(None)))
    expect(raw, "seconds", (float, int))
    devices: list[str] = []
    budget = Budget()
    out.update(missing=raw["missing"], error=raw["error"], type=raw["type"], seconds=float(raw["seconds"]),
               value=from_plain(raw.get("value"), devices, budget), devices=devices)
    if "args" in raw:
        out["args"] = from_plain(raw["args"], None, budget)
    return out


def load_untrusted(data: bytes) -> Any:
    if len(data) > MAX_RESPONSE_BYTES:
        raise ProbeError(f"the kernel's answer is too large ({len(data) // 2**20} MiB; "
                         f"at most {MAX_RESPONSE_BYTES // 2**20} MiB)")
    try:
        return wire_decode(data, trusted=False)
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


def _tensor(obj, devices, budget, depth):
    data = expect(obj, "data", torch.Tensor)
    device = expect(obj, "device", str)
    expect(obj, "requires_grad", bool)
    if type(data) is not torch.Tensor:
        raise ProbeError("malformed answer from the kernel: a tensor subclass")
    if devices is not None:
        devices.append(device)
    return data


def _size(obj, devices, budget, depth):
    dims = expect(obj, "dims", list)
    if not all(type(d) is int for d in dims):
        raise ProbeError("malformed answer from the kernel: a size with non-integer dimensions")
    return torch.Size(dims)


def _dtype(obj, devices, budget, depth):
    name = expect(obj, "name", str).removeprefix("torch.")
    dtype = getattr(torch, name, None)
    return dtype if isinstance(dtype, torch.dtype) else Opaque("torch.dtype", name)


def _dict(obj, devices, budget, depth):
    items = expect(obj, "items", list)
    out = {}
    for item in items:
        if not (type(item) is list and len(item) == 2 and type(item[0]) is str):
            raise ProbeError("malformed answer from the kernel: a dict item")
        out[item[0]] = from_plain(item[1], devices, budget, depth + 1)
    return out


def _ndarray(obj, devices, budget, depth):
    data = expect(obj, "data", torch.Tensor)
    return data.numpy()


def _module(obj, devices, budget, depth):
    state = expect(obj, "state", dict)
    hooks = expect(obj, "hooks", dict)
    modules = expect(obj, "modules", dict)
    if not all(type(k) is str and type(v) is torch.Tensor for k, v in state.items()):
        raise ProbeError("malformed answer from the kernel: a module's state")
    if not all(type(k) is str and type(v) is int for k, v in hooks.items()):
        raise ProbeError("malformed answer from the kernel: a module's hooks")
    if not all(type(k) is str and type(v) is str for k, v in modules.items()):
        raise ProbeError("malformed answer from the kernel: a module's submodules")
    budget.left -= len(state) + len(modules)
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
    return Opaque(expect(obj, "type", str), expect(obj, "repr", str))


DECODERS: dict[str, Callable[..., Any]] = {
    "tensor": _tensor, "size": _size, "dtype": _dtype, "dict": _dict, "ndarray": _ndarray, "module": _module,
    "dataframe": _dataframe, "opaque": _opaque,
}
