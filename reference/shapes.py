"""Reference oracle for the `shapes` assignment: PyTorch's own layers compute every answer.

Output sizes come from running `F.conv2d` / `F.max_pool2d` on meta tensors (shapes only, no
arithmetic), traced shapes from the model's own forward pass seen through forward hooks, and
the lecture answers from the lecture's layers. Functions that take a model accept either an
`nn.Module` (hidden checks: the grader's own model, never modified here: a deep copy runs) or
a model spec (public checks: plain tuples, so the value can be recorded and replayed; see
`build`, which must agree with the builder in `checks/public.py`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from autograder.checks.models import build
import torch.nn.functional as F

# ------------------------------------------------------------------------------ model specs


def as_model(model_or_spec) -> nn.Module:
    """A private copy to run: the caller's module is never touched."""
    if isinstance(model_or_spec, nn.Module):
        return copy.deepcopy(model_or_spec).cpu()
    return build(model_or_spec)


# ------------------------------------------------------------------------------ answers


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """What nn.Conv2d gives along one dimension: run F.conv2d on meta tensors."""
    x = torch.empty(1, 1, size, 1, device="meta")
    w = torch.empty(1, 1, kernel_size, 1, device="meta")
    out = F.conv2d(x, w, stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
    return int(out.shape[2])


def pool_output_size(size, kernel_size, stride=None, padding=0):
    """What nn.MaxPool2d gives along one dimension (floor mode): F.max_pool2d on meta tensors."""
    x = torch.empty(1, 1, size, 1, device="meta")
    stride = kernel_size if stride is None else stride
    out = F.max_pool2d(x, (kernel_size, 1), stride=(stride, 1), padding=(padding, 0))
    return int(out.shape[2])


def to_channels_first(pixels, height, width):
    """(N, H*W) or (N, H*W, C) row-major pixels → (N, C, H, W) float32, by explicit indexing.

    out[n, c, i, j] = pixels[n, i * width + j, c]: gather the rows, then move channels forward.
    """
    x = torch.as_tensor(pixels).to(torch.float32)
    if x.dim() == 2:
        x = x[:, :, None]
    index = torch.arange(height)[:, None] * width + torch.arange(width)[None, :]  # (H, W) positions
    return x[:, index.to(x.device), :].movedim(-1, 1).contiguous()


def trace_shapes(model, input_shape):
    """Output shape of each direct child, seen by forward hooks during the model's own forward."""
    model = as_model(model).eval()
    shapes = []
    handles = [child.register_forward_hook(lambda m, i, o: shapes.append(tuple(int(d) for d in o.shape)))
               for child in set(model.children())]
    with torch.no_grad():
        model(torch.zeros(input_shape))
    for h in handles:
        h.remove()
    return shapes


def flatten_features(features, input_shape):
    model = as_model(features).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *input_shape))
    return int(out[0].numel())


def _lfw_features():
    return nn.Sequential(nn.Conv2d(1, 32, 7), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(3))


def _lecture_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1), nn.LeakyReLU(inplace=True),
        nn.Conv2d(16, 16, kernel_size=3, stride=1, padding=1), nn.LeakyReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1), nn.LeakyReLU(inplace=True),
        nn.Conv2d(32, 32, kernel_size=3, stride=1, padding=1), nn.LeakyReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2, stride=2),
    )


def _lecture_cnn_output_shape():
    net = _lecture_cnn().to("meta").eval()
    return tuple(int(d) for d in net(torch.empty(16, 3, 256, 256, device="meta")).shape)


lfw_linear_length = flatten_features(_lfw_features(), (1, 170, 130))
lecture_cnn_output_shape = _lecture_cnn_output_shape()


# ------------------------------------------------------------------------------ known wrong answers


def conv_output_size_variant(size, kernel_size, stride=1, padding=0, dilation=1, mistake="no_dilation"):
    """The formula as typical mistakes write it."""
    if mistake == "no_dilation":
        return (size + 2 * padding - kernel_size) // stride + 1
    if mistake == "padding_once":
        return (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if mistake == "dilation_times_kernel":
        return (size + 2 * padding - dilation * kernel_size) // stride + 1
    if mistake == "ceil":
        return -(-(size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1
    raise ValueError(mistake)


def pool_output_size_variant(size, kernel_size, stride=None, padding=0, mistake="stride_one"):
    if mistake == "stride_one":
        return pool_output_size(size, kernel_size, 1 if stride is None else stride, padding)
    if mistake == "ceil":
        s = kernel_size if stride is None else stride
        return -(-(size + 2 * padding - kernel_size) // s) + 1
    if mistake == "no_padding":
        s = kernel_size if stride is None else stride
        return (size - kernel_size) // s + 1
    raise ValueError(mistake)


def channels_first_variant(pixels, height, width, mistake="reshape"):
    """reshape: (N, H*W, C) memory read as (N, C, H, W); transposed: (N, C, W, H); scaled: / 255;
    channels_last: (N, H, W, C) returned as is."""
    x = torch.as_tensor(pixels).to(torch.float32)
    if x.dim() == 2:
        x = x[:, :, None]
    n, _, c = x.shape
    if mistake == "reshape":
        return x.reshape(n, c, height, width)
    if mistake == "transposed":
        return x.reshape(n, height, width, c).permute(0, 3, 2, 1).contiguous()
    if mistake == "scaled":
        return to_channels_first(pixels, height, width) / 255
    if mistake == "channels_last":
        return x.reshape(n, height, width, c)
    raise ValueError(mistake)
