"""Public checks of the convolution assignment; expected values are recorded from the reference at build time."""

import torch
import torch.nn.functional as F

from autograder.checks import (CheckSet, Forbid, Misconception, close, failed, first_failure, passed, randn, show,
                               student_call, value_problem)

checks = CheckSet()
LIBRARY = Forbid(ops=("convolution", "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose", "conv_depthwise",
                      "qconv", "slow_conv", "thnn_conv", "mkldnn_conv", "cudnn_conv", "miopen_conv", "max_pool", "avg_pool",
                      "lp_pool", "adaptive_max_pool", "adaptive_avg_pool", "fractional_max_pool", "max_unpool",
                      "im2col", "col2im"), modules=("scipy.signal", "scipy.ndimage"), names=("convolve", "correlate"))
FLIPPED = ("The kernel is flipped: you computed a textbook convolution. PyTorch's conv2d is a "
           "cross-correlation: output[i, j] = sum(window * kernel) with the kernel as given, no flip.")
ONE_SIDED = ("The zero padding is on one side only. `padding=p` adds p rows at the top and p at the "
             "bottom (p columns left and right): F.pad(x, (pw, pw, ph, ph)).")
MAGNITUDE = "The magnitude is sqrt(gx**2 + gy**2)."
VALID = ("conv2d_single is a *valid* cross-correlation: only the positions where the whole kernel fits on the image, "
         "so the output is (H - kh + 1, W - kw + 1), with no padding and no border kept around it.")


def same_as_reference(st, name, expected, *args, mistakes=(), **kwargs):
    """The student's `name(*args, **kwargs)` (kwargs as given, defaults too; no library convolution) vs `expected`."""
    call = student_call(st, name, *args, probe={"forbid": LIBRARY}, **kwargs)
    return close(call, expected, rtol=1e-4, atol=1e-4, misconceptions=mistakes, device=st.device)


def conv2d_single_case(st, ref, image, kernel):
    expected = ref.conv2d_single(image, kernel)
    mistakes = [Misconception.later("flipped kernel", FLIPPED, lambda: ref.conv2d_single(image, kernel.flip(0, 1)))]
    kh, kw = kernel.shape
    if kh % 2 and kw % 2 and kh * kw > 1:  # "same" size, as image-filtering tutorials write it for odd kernels
        pads = (kw // 2, kw // 2, kh // 2, kh // 2)
        mistakes += [Misconception.later("the output kept the image's size, with a border of zeros", VALID,
                                         lambda: F.pad(expected, pads)),
                     Misconception.later("the image was zero-padded, so the output kept its size", VALID,
                                         lambda: ref.conv2d_single(F.pad(image, pads), kernel))]
    return same_as_reference(st, "conv2d_single", expected, image, kernel, mistakes=mistakes)


def conv2d_case(st, ref, x, weight, kwargs):
    bias, stride, padding = kwargs.get("bias"), kwargs.get("stride", 1), kwargs.get("padding", 0)
    expected = ref.conv2d(x, weight, bias, stride, padding)
    mistakes = [Misconception.later("flipped kernel", FLIPPED,
                                    lambda: ref.true_convolution(x, weight, bias, stride, padding))]
    if padding not in (0, (0, 0)):
        mistakes += [Misconception.later("padding applied on one side only", ONE_SIDED,
                                         lambda side=side, total=total: ref.one_sided_padding(
                                             x, weight, bias, stride, padding, side=side, total=total))
                     for side in ("after", "before") for total in (False, True)]
    if bias is not None:
        mistakes.append(Misconception.later("the bias is not added", "Add bias[c] to every position of output channel "
                                            "c.", lambda: ref.conv2d(x, weight, None, stride, padding)))
    return same_as_reference(st, "conv2d", expected, x, weight, mistakes=mistakes, **kwargs)


def max_pool2d_case(st, ref, x, kernel_size, kwargs):
    stride = kwargs.get("stride")
    expected = ref.max_pool2d(x, kernel_size, stride)
    mistakes = [] if stride is not None else [Misconception.later(
        "the stride defaulted to 1", "When stride is None it defaults to kernel_size: windows do not overlap.",
        lambda: ref.max_pool2d_stride_one(x, kernel_size, stride))]
    mistakes.append(Misconception.later("a partial window at the border was kept (ceil mode)",
                                        "Use floor mode: a window that would run past the input is dropped, "
                                        "so the output has floor((size - kernel) / stride) + 1 positions.",
                                        lambda: ref.max_pool2d_ceil(x, kernel_size, stride)))
    return same_as_reference(st, "max_pool2d", expected, x, kernel_size, mistakes=mistakes, **kwargs)


def edge_magnitude_case(st, ref, image):
    expected = ref.edge_magnitude(image)
    def gradients():
        return ref.conv2d_single(image, ref.SOBEL_X.to(image)), ref.conv2d_single(image, ref.SOBEL_Y.to(image))

    mistakes = [Misconception.later("the square root is missing", MAGNITUDE,
                                    lambda: sum(g**2 for g in gradients())),
                Misconception.later("|gx| + |gy| is not the magnitude", MAGNITUDE,
                                    lambda: sum(g.abs() for g in gradients()))]
    return same_as_reference(st, "edge_magnitude", expected, image, mistakes=mistakes)


@checks.public("conv2d_single")
def conv2d_single_small(st, ref, rng):
    """A 5×5 image with a 3×3 kernel that is not symmetric."""
    kernel = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 3.0]])
    return conv2d_single_case(st, ref, torch.arange(25.0).reshape(5, 5), kernel)


@checks.public("conv2d_single")
def conv2d_single_rectangular(st, ref, rng):
    """A 6×7 random image with a 2×3 kernel."""
    return conv2d_single_case(st, ref, randn(rng, 6, 7), randn(rng, 2, 3))


@checks.public("conv2d_single")
def conv2d_single_float64(st, ref, rng):
    """A float64 5×6 image and 3×2 kernel: the result keeps the input's dtype (float64) and device."""
    return conv2d_single_case(st, ref, randn(rng, 5, 6).double(), randn(rng, 3, 2).double())


@checks.public("conv2d")
def conv2d_small(st, ref, rng):
    """Two 3-channel 6×6 images, four 3×3 filters with bias; default stride and padding."""
    x, w, b = randn(rng, 2, 3, 6, 6), randn(rng, 4, 3, 3, 3), randn(rng, 4)
    return conv2d_case(st, ref, x, w, dict(bias=b))


@checks.public("conv2d")
def conv2d_stride_padding(st, ref, rng):
    """stride=2 and padding=1 on a 7×7 input, without bias."""
    return conv2d_case(st, ref, randn(rng, 1, 2, 7, 7), randn(rng, 3, 2, 3, 3), dict(stride=2, padding=1))


@checks.public("max_pool2d")
def max_pool2d_default_stride(st, ref, rng):
    """2×2 pooling with the default stride on a 1×2×6×6 input, then a (2, 3) kernel with stride (1, 2) on 1×2×5×7."""
    verdicts = [max_pool2d_case(st, ref, randn(rng, 1, 2, 6, 6), 2, {}),  # both run: every value is recorded
                max_pool2d_case(st, ref, randn(rng, 1, 2, 5, 7), (2, 3), {"stride": (1, 2)})]
    return first_failure(verdicts, "max_pool2d matches F.max_pool2d with int and pair kernel sizes and strides.")


def sobel_kernel(st, name, expected, other, swapped):
    call = st.value(name)
    if problem := value_problem(call, "a 3×3 tensor", torch.Tensor, missing_hint="Define it as a 3×3 tensor."):
        return problem
    if torch.equal(call.value.double(), swapped.double()):
        return failed(f"{name} holds {other}.",
                      "SOBEL_X responds to changes along x (columns): [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]].")
    if not torch.equal(call.value.double(), expected.double()):
        return failed(f"{name} is {show(call.value)}, expected {expected.tolist()}.")
    return passed(f"{name} is right.")


@checks.public("sobel")
def sobel_kernels(st, ref, rng):
    """SOBEL_X and SOBEL_Y hold the Sobel kernels."""
    verdicts = [sobel_kernel(st, "SOBEL_X", ref.SOBEL_X, "SOBEL_Y", ref.SOBEL_Y),
                sobel_kernel(st, "SOBEL_Y", ref.SOBEL_Y, "SOBEL_X", ref.SOBEL_X)]
    return first_failure(verdicts, "SOBEL_X and SOBEL_Y are the Sobel kernels.")


@checks.public("sobel")
def edge_magnitude_square(st, ref, rng):
    """Edges of a bright square on a dark 8×8 image."""
    image = torch.zeros(8, 8)
    image[2:6, 2:6] = 1.0
    return edge_magnitude_case(st, ref, image)
