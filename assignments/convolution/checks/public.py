"""Public checks of the convolution assignment: students run these while they work.

Expected values are recorded from the reference when the assignment is built; the inputs
come from a generator seeded by each check's name, so they are the same every run.
"""

from __future__ import annotations

import torch

from autograder.checks import (CheckSet, Misconception, close, failed, first_failure, randn,
                               signature)
from autograder.checks import Forbid

checks = CheckSet()

LIBRARY = Forbid(
    ops=("convolution", "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose", "_conv_depthwise",
         "slow_conv", "thnn_conv", "mkldnn_conv", "cudnn_conv", "miopen_conv", "max_pool", "avg_pool",
         "lp_pool", "adaptive_max_pool", "adaptive_avg_pool", "fractional_max_pool", "max_unpool",
         "im2col", "col2im"),
    modules=("scipy.signal", "scipy.ndimage"),
    names=("convolve", "correlate"),
)
RTOL, ATOL = 1e-4, 1e-4

FLIPPED = ("The kernel is flipped: you computed a textbook convolution. PyTorch's conv2d is a "
           "cross-correlation: output[i, j] = sum(window * kernel) with the kernel as given, no flip.")
ONE_SIDED = ("The zero padding is on one side only. `padding=p` adds p rows at the top and p at the "
             "bottom (p columns left and right): F.pad(x, (pw, pw, ph, ph)).")


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_single_case(st, ref, image, kernel):
    expected = ref.conv2d_single(image, kernel)
    flipped = Misconception("flipped kernel", FLIPPED, ref.conv2d_single(image, kernel.flip(0, 1)))
    call = st.call("conv2d_single", image, kernel, forbid=LIBRARY,
                   description=signature("conv2d_single", image, kernel))
    return close(call, expected, rtol=RTOL, atol=ATOL, misconceptions=[flipped], device=st.device)


def conv2d_misconceptions(ref, x, weight, bias, stride, padding):
    found = [Misconception("flipped kernel", FLIPPED, ref.true_convolution(x, weight, bias, stride, padding))]
    if any(pair(padding)):
        for side in ("after", "before"):
            for total in (False, True):
                found.append(Misconception(
                    "padding applied on one side only", ONE_SIDED,
                    ref.one_sided_padding(x, weight, bias, stride, padding, side=side, total=total)))
    if bias is not None:
        found.append(Misconception("the bias is not added",
                                   "Add bias[c] to every position of output channel c.",
                                   ref.conv2d(x, weight, None, stride, padding)))
    return found


def conv2d_case(st, ref, x, weight, **kwargs):
    """kwargs are passed to the student exactly as given, so defaults get exercised."""
    bias, stride, padding = kwargs.get("bias"), kwargs.get("stride", 1), kwargs.get("padding", 0)
    expected = ref.conv2d(x, weight, bias, stride, padding)
    call = st.call("conv2d", x, weight, forbid=LIBRARY, description=signature("conv2d", x, weight, **kwargs),
                   **kwargs)
    return close(call, expected, rtol=RTOL, atol=ATOL, device=st.device,
                 misconceptions=conv2d_misconceptions(ref, x, weight, bias, stride, padding))


def max_pool2d_case(st, ref, x, kernel_size, **kwargs):
    stride = kwargs.get("stride")
    expected = ref.max_pool2d(x, kernel_size, stride)
    stride_one = Misconception(
        "the stride defaulted to 1",
        "When stride is None it defaults to kernel_size: windows do not overlap.",
        ref.max_pool2d_stride_one(x, kernel_size, stride))
    ceil = Misconception(
        "a partial window at the border was kept (ceil mode)",
        "Use floor mode: a window that would run past the input is dropped, "
        "so the output has floor((size - kernel) / stride) + 1 positions.",
        ref.max_pool2d_ceil(x, kernel_size, stride))
    call = st.call("max_pool2d", x, kernel_size, forbid=LIBRARY,
                   description=signature("max_pool2d", x, kernel_size, **kwargs), **kwargs)
    misconceptions = [ceil] if stride is not None else [stride_one, ceil]
    return close(call, expected, rtol=RTOL, atol=ATOL, misconceptions=misconceptions, device=st.device)


def edge_magnitude_case(st, ref, image):
    expected = ref.edge_magnitude(image)
    gx, gy = ref.conv2d_single(image, ref.SOBEL_X), ref.conv2d_single(image, ref.SOBEL_Y)
    misconceptions = [
        Misconception("the square root is missing", "The magnitude is sqrt(gx**2 + gy**2).", gx**2 + gy**2),
        Misconception("|gx| + |gy| is not the magnitude", "The magnitude is sqrt(gx**2 + gy**2).",
                      gx.abs() + gy.abs()),
    ]
    call = st.call("edge_magnitude", image, forbid=LIBRARY, description=signature("edge_magnitude", image))
    return close(call, expected, rtol=RTOL, atol=ATOL, misconceptions=misconceptions, device=st.device)


@checks.public("conv2d_single")
def conv2d_single_small(st, ref, rng):
    """A 5×5 image with a 3×3 kernel that is not symmetric."""
    image = torch.arange(25.0).reshape(5, 5)
    kernel = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 3.0]])
    return conv2d_single_case(st, ref, image, kernel)


@checks.public("conv2d_single")
def conv2d_single_rectangular(st, ref, rng):
    """A 6×7 random image with a 2×3 kernel."""
    return conv2d_single_case(st, ref, randn(rng, 6, 7), randn(rng, 2, 3))


@checks.public("conv2d")
def conv2d_small(st, ref, rng):
    """Two 3-channel 6×6 images, four 3×3 filters with bias; default stride and padding."""
    x, w, b = randn(rng, 2, 3, 6, 6), randn(rng, 4, 3, 3, 3), randn(rng, 4)
    return conv2d_case(st, ref, x, w, bias=b)


@checks.public("conv2d")
def conv2d_stride_padding(st, ref, rng):
    """stride=2 and padding=1 on a 7×7 input, without bias."""
    x, w = randn(rng, 1, 2, 7, 7), randn(rng, 3, 2, 3, 3)
    return conv2d_case(st, ref, x, w, stride=2, padding=1)


@checks.public("max_pool2d")
def max_pool2d_default_stride(st, ref, rng):
    """2×2 pooling with the default stride on a 1×2×6×6 input."""
    return max_pool2d_case(st, ref, randn(rng, 1, 2, 6, 6), 2)


@checks.public("sobel")
def sobel_kernels(st, ref, rng):
    """SOBEL_X and SOBEL_Y hold the Sobel kernels."""
    verdicts = []
    for name, other in (("SOBEL_X", "SOBEL_Y"), ("SOBEL_Y", "SOBEL_X")):
        call = st.value(name)
        expected, swapped = getattr(ref, name), getattr(ref, other)
        if call.missing:
            verdicts.append(failed(f"`{name}` is not defined.", "Define it as a 3×3 tensor."))
        elif not isinstance(call.value, torch.Tensor) or tuple(call.value.shape) != (3, 3):
            verdicts.append(failed(f"{name} should be a 3×3 tensor, got {call.type}."))
        elif torch.equal(call.value.double(), swapped.double()):
            verdicts.append(failed(f"{name} holds {other}.",
                                   "SOBEL_X responds to changes along x (columns): [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]."))
        elif not torch.equal(call.value.double(), expected.double()):
            verdicts.append(failed(f"{name} is {call.value.tolist()}, expected {expected.tolist()}."))
    return first_failure(verdicts, "SOBEL_X and SOBEL_Y are the Sobel kernels.")


@checks.public("sobel")
def edge_magnitude_square(st, ref, rng):
    """Edges of a bright square on a dark 8×8 image."""
    image = torch.zeros(8, 8)
    image[2:6, 2:6] = 1.0
    return edge_magnitude_case(st, ref, image)
