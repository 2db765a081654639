"""Reference values recorded at assign time and replayed in a student's self-check.

While building the student bundle, public checks run against `Recording(reference)`, which
stores every value the reference gave under a fingerprint of the request (name and
arguments). The student's self-check runs the same checks against `Replay(records)`: the
same seeded inputs give the same fingerprints, so the expected values come back without the
reference ever leaving the grader.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..kernel import codec, kernel_side
from ..errors import TorchgradeError


class NotRecorded(TorchgradeError):
    """A self-check asked for a reference value that was not recorded at assign time."""


def fingerprint(name: str, args: tuple = (), kwargs: dict | None = None) -> str:
    h = hashlib.sha256(name.encode())
    _feed(h, args)
    _feed(h, sorted((kwargs or {}).items()))
    return h.hexdigest()[:32]


DEVICE_NAMES = ("cpu", "cuda", "mps", "xpu")


def _feed(h: "hashlib._Hash", obj: Any) -> None:
    if isinstance(obj, torch.device) or (isinstance(obj, str) and obj.split(":")[0] in DEVICE_NAMES):
        h.update(b"<device>;")  # built on a GPU runner, replayed on a student's laptop: the same request
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}(".encode())
        for x in obj:
            _feed(h, x)
        h.update(b")")
    elif isinstance(obj, dict):
        _feed(h, sorted(obj.items()))
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


class Recording:
    """Wraps the reference module and records what it returns."""

    def __init__(self, module: Any):
        self._module = module
        self.records: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if not callable(attr) or isinstance(attr, torch.Tensor):
            self.records[fingerprint(name)] = attr
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            value = attr(*args, **kwargs)
            self.records[fingerprint(name, args, kwargs)] = value
            return value

        return recorded

    def save(self, path: Path) -> None:
        torch.save({k: kernel_side.to_plain(v) for k, v in self.records.items()}, path)


class Replay:
    """Stands in for the reference module in a self-check."""

    def __init__(self, records: dict[str, Any]):
        self._records = records

    @classmethod
    def load(cls, path: Path) -> "Replay":
        raw = torch.load(path, weights_only=True)
        return cls({k: codec.from_plain(v) for k, v in raw.items()})

    def __getattr__(self, name: str) -> Any:
        key = fingerprint(name)
        if key in self._records:
            return self._records[key]

        def replayed(*args: Any, **kwargs: Any) -> Any:
            key = fingerprint(name, args, kwargs)
            if key not in self._records:
                raise NotRecorded(f"ref.{name}(...) was not recorded at assign time for these inputs: the check asks "
                                  "the reference about values that depend on the answer (the self-check can only "
                                  "replay what the build recorded from the solution)")
            return self._records[key]

        return replayed
