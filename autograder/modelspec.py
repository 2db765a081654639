"""Small models described as data, so public checks and references build the same module.

A spec is `(layers, freeze, tie, training)`; a layer is `(kind, args, kwargs-pairs)` with
`kind` a `torch.nn` class name, or "Sequential" (args are layers), "Named" (args: label and
layer) and "Same" (args: label) for one module used in two places. `tie` holds
(destination, source) parameter names; `freeze` parameter names. Specs are tuples of
numbers and strings, so a self-check can replay reference values recorded for them.
"""

from __future__ import annotations

import torch.nn as nn


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
