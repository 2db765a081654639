"""The one codec for values crossing the kernel boundary.

Requests (grader → kernel) are grader-made and written with `torch.save`. Responses
(kernel → grader) are student-made bytes: they are read only with
`torch.load(weights_only=True)`, which refuses arbitrary objects, and then turned back
from the plain form that `kernel_side.to_plain` produced.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ProbeError


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


def write_request(request: dict[str, Any], path: Path) -> None:
    torch.save(request, path)


def read_response(path: Path) -> dict[str, Any]:
    try:
        raw = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ProbeError(f"unreadable probe response ({type(exc).__name__}: {exc})", path) from exc
    if not isinstance(raw, dict):
        raise ProbeError("probe response is not a mapping", path)
    devices: list[str] = []
    raw["value"] = from_plain(raw.get("value"), devices)
    if "args" in raw:
        raw["args"] = from_plain(raw["args"])
    raw["devices"] = devices
    return raw


def from_plain(obj: Any, devices: list[str] | None = None) -> Any:
    """Undo `kernel_side.to_plain`; records the devices of returned tensors in `devices`."""
    if isinstance(obj, list):
        return [from_plain(x, devices) for x in obj]
    if isinstance(obj, tuple):
        return tuple(from_plain(x, devices) for x in obj)
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        if devices is not None:
            devices.append(obj["device"])
        return obj["__tensor__"]
    if "__size__" in obj:
        return torch.Size(obj["__size__"])
    if "__ndarray__" in obj:
        return obj["__ndarray__"].numpy()
    if "__dtype__" in obj:
        return getattr(torch, obj["__dtype__"].removeprefix("torch."), obj["__dtype__"])
    if "__module__" in obj:
        return ModuleSnapshot(obj["__module__"], obj["training"], obj["state"], obj["hooks"], obj["modules"],
                              obj["n_params"], obj["n_trainable"])
    if "__dataframe__" in obj:
        import pandas

        return pandas.DataFrame({k: from_plain(v) for k, v in obj["__dataframe__"].items()})
    if "__repr__" in obj:
        return Opaque(obj["__type__"], obj["__repr__"])
    return {k: from_plain(v, devices) for k, v in obj.items()}
