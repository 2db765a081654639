"""Reference oracle for the `convolution` assignment: torch's own operators, not a model answer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T.contiguous()


def conv2d_single(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid cross-correlation of one (H, W) image with one (kh, kw) kernel."""
    return F.conv2d(image[None, None], kernel[None, None])[0, 0]


def conv2d(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


def max_pool2d(x, kernel_size, stride=None):
    return F.max_pool2d(x, kernel_size, stride=stride)


def edge_magnitude(image: torch.Tensor) -> torch.Tensor:
    gx = conv2d_single(image, SOBEL_X.to(image))
    gy = conv2d_single(image, SOBEL_Y.to(image))
    return torch.sqrt(gx**2 + gy**2)


# Known wrong answers, for diagnostics: what typical mistakes compute.

def true_convolution(x, weight, bias=None, stride=1, padding=0):
    """Kernel flipped: textbook convolution instead of torch's cross-correlation."""
    return F.conv2d(x, weight.flip(-1, -2), bias, stride=stride, padding=padding)


def one_sided_padding(x, weight, bias=None, stride=1, padding=0, side="after", total=False):
    """Zero padding applied on one side of each spatial dimension only (`total`: 2p on that side)."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    if total:
        ph, pw = 2 * ph, 2 * pw
    pads = (0, pw, 0, ph) if side == "after" else (pw, 0, ph, 0)
    return F.conv2d(F.pad(x, pads), weight, bias, stride=stride)


def max_pool2d_stride_one(x, kernel_size, stride=None):
    """Pooling whose stride defaulted to 1 instead of the kernel size."""
    return F.max_pool2d(x, kernel_size, stride=1 if stride is None else stride)


def max_pool2d_ceil(x, kernel_size, stride=None):
    return F.max_pool2d(x, kernel_size, stride=stride, ceil_mode=True)
