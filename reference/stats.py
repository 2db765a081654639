"""Reference oracle for the `stats` assignment: float64 statistics over the whole data at once,
and torchvision's own transforms; plus what typical mistakes compute, for diagnostics.

Every function takes tensors, numbers and tuples only, so a student's self-check can replay
the values recorded at assign time.
"""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF
from torchvision import transforms


def _channels_first(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (C, N*H*W) in float64: every pixel of a channel in one row."""
    return images.double().transpose(0, 1).reshape(images.shape[1], -1)


def channel_stats_of(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of a whole (N, C, H, W) data set, as float32 (C,) tensors."""
    pixels = _channels_first(images)
    return pixels.mean(dim=1).float(), pixels.std(dim=1, correction=0).float()


# Known wrong answers for channel_stats, computed on the same data split into `batch_size` batches.

def sample_std_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The std divides by N - 1 (torch.std's default) instead of N."""
    pixels = _channels_first(images)
    return pixels.mean(dim=1).float(), pixels.std(dim=1, correction=1).float()


def _batches(images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [_channels_first(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]


def batch_mean_stats(images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-batch mean and E[x²] averaged over batches, as if every batch had the same size."""
    parts = _batches(images, batch_size)
    mean = torch.stack([p.mean(dim=1) for p in parts]).mean(dim=0)
    square = torch.stack([(p**2).mean(dim=1) for p in parts]).mean(dim=0)
    return mean.float(), (square - mean**2).clamp_min(0).sqrt().float()


def batch_std_stats(images: torch.Tensor, batch_size: int, correction: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The correct mean, but the std computed within each batch and averaged over batches."""
    parts = _batches(images, batch_size)
    mean = _channels_first(images).mean(dim=1)
    std = torch.stack([p.std(dim=1, correction=correction) for p in parts]).mean(dim=0)
    return mean.float(), std.float()


def batch_std_weighted_stats(images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The correct mean, but per-batch stds averaged with batch-size weights."""
    parts = _batches(images, batch_size)
    mean = _channels_first(images).mean(dim=1)
    sizes = torch.tensor([p.shape[1] for p in parts], dtype=torch.float64)
    std = (torch.stack([p.std(dim=1, correction=0) for p in parts]) * sizes[:, None]).sum(dim=0) / sizes.sum()
    return mean.float(), std.float()


# normalize and make_transform

def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    return TF.normalize(images, list(map(float, mean)), list(map(float, std)))


def normalize_last_dim(images: torch.Tensor, mean, std) -> torch.Tensor:
    """(images - mean) / std broadcast along the last (width) dimension instead of the channels."""
    return (images - torch.as_tensor(mean, dtype=images.dtype)) / torch.as_tensor(std, dtype=images.dtype)


def transform_of(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """What Compose([ToTensor(), Normalize(mean, std)]) makes of a uint8 (H, W) or (H, W, C) image."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(list(mean), list(std))])(pixels.numpy())


def unscaled_transform_of(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalize applied to pixel values in [0, 255] (no ToTensor scaling)."""
    x = transforms.PILToTensor()(_pil(pixels)).float()
    return transforms.Normalize(list(mean), list(std))(x)


def unnormalised_transform_of(pixels: torch.Tensor) -> torch.Tensor:
    """ToTensor alone."""
    return transforms.ToTensor()(pixels.numpy())


def _pil(pixels: torch.Tensor):
    from PIL import Image

    return Image.fromarray(pixels.numpy())


# mnist_stats

def mnist_stats_of(images: torch.Tensor) -> tuple[float, float]:
    """Mean and population std of uint8 MNIST images scaled to [0, 1]."""
    x = images.double() / 255
    return float(x.mean()), float(x.std(correction=0))
