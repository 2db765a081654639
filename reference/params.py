"""Reference oracle for the `params` assignment: PyTorch's own modules are counted, never formulas.

Layer counts come from real `nn.Linear` / `nn.Conv2d` modules built on the meta device (shapes
without memory), model counts from `model.parameters()` (which yields a shared parameter once),
and the summary table from forward hooks on the leaf modules during the model's own forward
pass. Functions that take a model accept either an `nn.Module` (hidden checks: a deep copy runs,
the grader's model is never touched) or a model spec (public checks: plain tuples, so the value
can be recorded and replayed; see `build`, which must agree with `checks/public.py`).
"""

from __future__ import annotations

import copy

import pandas as pd
import torch
import torch.nn as nn

from autograder.checks.models import build

COLUMNS = ("layer", "type", "output_shape", "params")

# ------------------------------------------------------------------------------ model specs


def as_model(model_or_spec) -> nn.Module:
    """A private copy to run: the caller's module is never touched (deepcopy keeps sharing)."""
    if isinstance(model_or_spec, nn.Module):
        return copy.deepcopy(model_or_spec).cpu()
    return build(model_or_spec)


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------ answers


def linear_params(in_features, out_features, bias=True):
    return numel(nn.Linear(in_features, out_features, bias=bias, device="meta"))


def conv2d_params(in_channels, out_channels, kernel_size, bias=True, groups=1):
    return numel(nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups, device="meta"))


def count_params(model, trainable_only=False):
    return sum(p.numel() for p in as_model(model).parameters() if p.requires_grad or not trainable_only)


def summary_rows(model, input_shape):
    """(layer, type, output_shape, params) per leaf-module call, from forward hooks, in call order."""
    model = as_model(model).eval()
    rows = []

    def hook_for(name):
        def hook(module, inputs, output):
            rows.append((name, type(module).__name__, tuple(int(d) for d in output.shape), numel(module)))
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in model.named_modules()
               if next(m.children(), None) is None]
    with torch.no_grad():
        model(torch.zeros(input_shape))
    for h in handles:
        h.remove()
    return rows


def summary(model, input_shape):
    return pd.DataFrame(summary_rows(model, input_shape), columns=list(COLUMNS))


def _lfw_cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 7), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(3), nn.Flatten(),
                         nn.Dropout(0.35), nn.Linear(70848, 7)).to("meta")


cifar_logreg_params = numel(nn.Linear(3 * 32 * 32, 10, device="meta"))
conv_1_6_3_params = numel(nn.Conv2d(1, 6, 3, device="meta"))
lfw_cnn_params = numel(_lfw_cnn())


# ------------------------------------------------------------------------------ known wrong answers


def conv2d_params_variant(in_channels, out_channels, kernel_size, bias=True, groups=1, mistake="no_bias"):
    if mistake == "no_bias":
        return conv2d_params(in_channels, out_channels, kernel_size, False, groups)
    if mistake == "no_groups":
        return conv2d_params(in_channels, out_channels, kernel_size, bias, 1)
    if mistake == "groups_twice":  # divided both channel counts by groups
        return conv2d_params(in_channels, out_channels, kernel_size, bias, groups) // groups if groups > 1 else -1
    if mistake == "square_first":  # a pair (kh, kw) read as kh × kh
        kh = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
        return conv2d_params(in_channels, out_channels, (kh, kh), bias, groups)
    if mistake == "bias_per_input":
        return conv2d_params(in_channels, out_channels, kernel_size, False, groups) + (in_channels if bias else 0)
    raise ValueError(mistake)


def count_with_buffers(model):
    """Summing state_dict(): parameters and buffers, and a shared tensor once per name."""
    return sum(t.numel() for t in as_model(model).state_dict().values())


def count_per_name(model, trainable_only=False):
    """A shared parameter counted once per place it is reachable from (no de-duplication)."""
    return sum(p.numel() for _, p in as_model(model).named_parameters(remove_duplicate=False)
               if p.requires_grad or not trainable_only)


def summary_per_module(model, input_shape):
    """One row per leaf module (repeated calls collapsed): what a dict keyed by layer name gives."""
    seen, rows = set(), []
    for row in summary_rows(model, input_shape):
        if row[0] not in seen:
            seen.add(row[0])
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))
