"""Modules as checks see them: small models described as data, snapshots of their state, comparisons.

A model spec is `(layers, freeze, tie, training)`; a layer is `(kind, args, kwargs-pairs)` with `kind` a
`torch.nn` class name, or "Sequential" (args are layers), "Named" (args: label and layer) and "Same"
(args: label) for one module used in two places. `tie` holds (destination, source) parameter names;
`freeze` parameter names. Specs are tuples of numbers and strings, so a public check and the reference
build the same module, and a self-check can replay reference values recorded for a spec.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from .core import Verdict, failed, passed


def layer(kind, *args, **kwargs):
    """One layer of a spec: a torch.nn class name with its arguments."""
    return (kind, args, tuple(sorted(kwargs.items())))


def seq(*layers):
    return ("Sequential", layers, ())


def spec(*layers, training=False, freeze=(), tie=()):
    return (layers, tuple(freeze), tuple(tie), training)


def build(model_spec):
    """(layers, freeze, tie, training) → a fresh nn.Sequential."""
    layers, freeze, tie, training = model_spec
    named = {}

    def make(item):
        kind, args, kwargs = item
        if kind == "Sequential":
            return nn.Sequential(*(make(i) for i in args))
        if kind == "Named":
            named[args[0]] = make(args[1])
            return named[args[0]]
        if kind == "Same":
            return named[args[0]]
        return getattr(nn, kind)(*args, **dict(kwargs))

    model = nn.Sequential(*(make(i) for i in layers))
    for dst, src in tie:
        path, _, attr = dst.rpartition(".")
        setattr(model.get_submodule(path), attr, model.get_parameter(src))
    for name in freeze:
        model.get_parameter(name).requires_grad_(False)
    return model.train(training)


def describe(model: nn.Module) -> str:
    """A short picture of a model for messages: Sequential(Conv2d, BatchNorm2d, ReLU, ...)."""
    if not isinstance(model, nn.Sequential):
        return type(model).__name__
    inner = [describe(m) for m in model]
    if len(inner) > 8:
        inner = inner[:7] + [f"... {len(inner) - 7} more"]
    return f"Sequential({', '.join(inner)})"


def states_close(actual: dict, expected: dict, *, rtol: float = 1e-4, atol: float = 1e-6,
                 keys: Iterable[str] | None = None) -> bool:
    """Two state dicts agree on `keys` (default: all of `expected`'s, and no other key in `actual`):
    floating tensors within the tolerances, others exactly."""
    return state_difference(actual, expected, rtol=rtol, atol=atol, keys=keys) is None


def state_difference(actual: dict, expected: dict, *, rtol: float = 1e-4, atol: float = 1e-6,
                     keys: Iterable[str] | None = None) -> str | None:
    """Where two state dicts first disagree, in words; None where they agree."""
    if keys is None and set(actual) != set(expected):
        extra = sorted(set(actual) - set(expected))
        if extra:
            return f"{extra[0]} is not expected"
    for k in (expected.keys() if keys is None else keys):
        a, e = actual.get(k), expected[k]
        if not isinstance(a, torch.Tensor):
            return f"{k} is missing"
        if a.shape != e.shape:
            return f"{k} has shape {tuple(a.shape)}, expected {tuple(e.shape)}"
        if e.is_floating_point():
            if not torch.allclose(a.double(), e.double(), rtol=rtol, atol=atol):
                return f"{k} differs by up to {float((a.double() - e.double()).abs().max()):.3g}"
        elif not torch.equal(a, e):
            return f"{k} differs"
    return None


def module_snapshot(model: torch.nn.Module) -> Any:
    """The same `ModuleSnapshot` the probe returns for a student-side module, for a grader-side one."""
    from ..kernel import codec, kernel_side

    return codec.from_plain(kernel_side.to_plain(model))


def state_unchanged(what: str, before: Any, after: Any, mode: bool = True, hooks: bool = True) -> Verdict:
    """A call left a module's parameters and buffers (and, if asked, train/eval mode and hooks) as they were."""
    if not hasattr(after, "state"):
        return failed(f"{what}: the model did not come back from the call.")
    changed = [k for k in before.state if k not in after.state or not torch.equal(before.state[k], after.state[k])]
    if changed:
        return failed(f"{what} changed the model's parameters or buffers ({', '.join(changed[:4])}).",
                      "Run the forward pass in eval mode under torch.no_grad(), and restore what you change.")
    if mode and before.training != after.training:
        return failed(f"{what} left the model in {'train' if after.training else 'eval'} mode; it was in "
                      f"{'train' if before.training else 'eval'} mode.", "Restore the mode you found: "
                      "remember model.training before, and call model.train(was_training) after.")
    if hooks and before.hooks != after.hooks:
        return failed(f"{what} left hooks on the model: {after.hooks} (before: {before.hooks}).",
                      "Keep the handle that register_forward_hook returns and call handle.remove().")
    return passed(f"{what} left the model as it was.")
