"""Data for checks: the one MNIST split reader, and objects checks hand to student code (loaders, hooks).

The loaders and hooks are pickled into the kernel, so they live in the engine package the kernel
can import; nothing here is secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..errors import ConfigError

MNIST_SPLITS = {"train": True, "test": False}


class MissingData(ConfigError):
    """The data a check reads is not where it should be: in a self-check, the `data/` folder handed out with the
    notebook is not beside it. The check is an `error` outcome of phase `data`, whose message says so."""


def mnist_split(root: Path | str, split: str = "test", scale: str = "unit") -> tuple[torch.Tensor, torch.Tensor]:
    """A split of the MNIST files under `root` (`data/` for students, `hidden/data` for the hidden test):
    images float32 (N, 1, 28, 28), scaled to [0, 1] as ToTensor does (`scale="unit"`), to [-1, 1]
    (`"symmetric"`, as a GAN's Normalize((0.5,), (0.5,)) does), or left as 0-255 bytes (`"bytes"`), and
    int64 labels. Read with torchvision's own MNIST class, as the notebooks read them."""
    from torchvision.datasets import MNIST

    if split not in MNIST_SPLITS:
        raise ConfigError(f"no MNIST split {split!r}; splits are {', '.join(MNIST_SPLITS)}", root)
    if root is None:
        raise MissingData(f"the MNIST {split} split it reads is in no data folder here")
    try:
        dataset = MNIST(str(root), train=MNIST_SPLITS[split], download=False)
    except RuntimeError as exc:
        raise MissingData(f"the MNIST {split} split it reads is not in {Path(root).name}/", root) from exc
    images = dataset.data.unsqueeze(1)
    if scale == "unit":
        images = images.to(torch.float32).div(255)
    elif scale == "symmetric":
        images = images.to(torch.float32).div(255).mul(2).sub(1)
    elif scale != "bytes":
        raise ValueError(f"unknown scale {scale!r}")
    return images, dataset.targets.to(torch.int64)


class OnePassLoader:
    """Yields the given batches once; a second pass raises, so "exactly one pass" is enforced."""

    def __init__(self, batches: Sequence[tuple[torch.Tensor, ...]]):
        self.batches = list(batches)
        self.passes = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        self.passes += 1
        if self.passes > 1:
            raise RuntimeError("this loader can be iterated only once: compute everything in a single pass")
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def dataset(self):
        return torch.utils.data.TensorDataset(*[torch.cat(parts) for parts in zip(*self.batches)])


def batches_of(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split a data set into batches; the last one may be smaller."""
    return [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(images), batch_size)]


def tensor_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  shuffle: bool = False) -> torch.utils.data.DataLoader:
    """A plain DataLoader over a TensorDataset, as notebooks build them (shuffling draws from torch's global
    generator, so a torch.manual_seed before the pass fixes the order)."""
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=shuffle)


def keep_output(module, inputs, output):
    """A forward hook that changes nothing: a picklable stand-in for a hook a model already has."""
    return None
