"""Inputs for checks: seeded random tensors, sizes and pixels, drawn from the check's `rng`."""

from __future__ import annotations

import torch


def randn(rng: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=rng)


def randint(rng: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def int_or_pair(rng: torch.Generator, low: int, high: int) -> int | tuple[int, int]:
    """A random int in [low, high], or (half the time) a pair of them, as kernel sizes, strides and paddings are
    given to torch."""
    return randint(rng, low, high) if randint(rng, 0, 1) else (randint(rng, low, high), randint(rng, low, high))


def random_pixels(rng: torch.Generator, *shape: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Random 8-bit pixel values in [0, 255], as images hold them before any scaling."""
    return torch.randint(0, 256, shape, generator=rng, dtype=dtype)
