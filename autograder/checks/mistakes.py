"""Known mistakes: the wrong values typical mistakes produce, recognised in a student's result and named."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch

from .core import Misconception, Verdict, failed, passed


def known_mistakes(table: Iterable[tuple[str, str, Any]], value_of: Callable[[Any], Any]) -> list[Misconception]:
    """A table of known mistakes, rows (label, hint, key), as misconceptions: each one's wrong value is
    `value_of(key)`, e.g. `lambda m: ref.conv2d_params_variant(*args, mistake=m)`."""
    return [Misconception(label, hint, value_of(key)) for label, hint, key in table]


def diagnose(actual: torch.Tensor, misconceptions: Sequence[Misconception], rtol: float,
             atol: float) -> Misconception | None:
    """The first known mistake whose tensor `actual` equals within tolerance, whatever its dtype (the dtype is
    judged on its own, after the values), NaN where the mistake gives NaN (an overflow is a mistake too)."""
    for m in misconceptions:
        exp = m.value()
        if (isinstance(exp, torch.Tensor) and exp.shape == actual.shape
                and torch.allclose(actual.double(), exp.double(), rtol=rtol, atol=atol, equal_nan=True)):
            return m
    return None


def normal_sample(what: str, values: torch.Tensor, mean: float, std: float,
                  mistakes: Iterable[tuple[Callable[[float, float], bool], str, str]] = (), hint: str = "") -> Verdict:
    """`values` (a freshly initialised weight) look like a sample of N(mean, std²): the sample mean, the sample std
    and the share within one std of `mean` each within about six standard errors. Otherwise the first known mistake
    that fits (`mistakes`: rows (fits(sample mean, sample std), label, hint)), or `hint`."""
    n, m, s = values.numel(), float(values.mean()), float(values.std())
    near = float(((values - mean).abs() < std).double().mean())
    stats = f"mean {m:.4f}, std {s:.4f}"
    if (abs(m - mean) <= 6 * std / math.sqrt(n) + 1e-4 and abs(s - std) <= 6 * std / math.sqrt(2 * n) + 2e-4
            and abs(near - 0.6827) <= 6 * math.sqrt(0.22 / n) + 0.005):
        return passed(f"{what}: {stats}, as N({mean:g}, {std:g}²).")
    for fits, label, why in mistakes:
        if fits(m, s):
            return failed(f"{what}: {stats}: {label}.", why)
    return failed(f"{what}: {stats}, {near:.1%} within one std of {mean:g}; expected N({mean:g}, {std:g}²) "
                  "(68.3% within one std).", hint)
