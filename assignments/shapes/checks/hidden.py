"""Hidden checks of the shapes assignment (grader only): random sizes, and models built here and given to the
reference as they are (it runs a deep copy), so any torch.nn stack can be used."""

import numpy as np
import torch.nn as nn

from autograder.checks import CheckSet, every, first_failure, randint, random_pixels

from .public import channels_case, flatten_case, sizes, trace_case

checks = CheckSet()
CASES = 15
# flatten_features names one known mistake here, channels missing, in these words (see flatten_case)
FLATTEN_HINTS = ("Flatten keeps every channel: channels × height × width of the last feature map.",)


def valid_conv(rng, dilation: bool):
    """(size, kernel_size, kwargs) with a non-empty output; kwargs only where they differ from defaults."""
    while True:
        size, k, s, p = randint(rng, 1, 300), randint(rng, 1, 11), randint(rng, 1, 5), randint(rng, 0, 5)
        d = randint(rng, 2, 4) if dilation else 1
        if size + 2 * p - d * (k - 1) - 1 >= 0:
            kwargs = {name: v for name, v, default in (("stride", s, 1), ("padding", p, 0), ("dilation", d, 1))
                      if v != default or randint(rng, 0, 3) == 0}
            return size, k, kwargs


@checks.hidden("conv_output_size")
def conv_output_size_random(st, ref, rng):
    """Random sizes, kernels, strides and paddings (dilation 1), compared with F.conv2d's output shape."""
    return sizes(st, ref, "conv_output_size", [valid_conv(rng, dilation=False) for _ in range(CASES)],
                 f"conv_output_size matches nn.Conv2d on {CASES} random settings.")


@checks.hidden("conv_output_size")
def conv_output_size_random_dilation(st, ref, rng):
    """Random settings with dilation 2 to 4."""
    return sizes(st, ref, "conv_output_size", [valid_conv(rng, dilation=True) for _ in range(CASES)],
                 f"conv_output_size matches nn.Conv2d with dilation on {CASES} random settings.")


def valid_pool(rng, stride: bool, padding: bool):
    while True:
        size, k = randint(rng, 1, 300), randint(rng, 1, 6)
        kwargs = {"stride": randint(rng, 1, 5)} if stride else {}
        kwargs |= {"padding": randint(rng, 0, k // 2)} if padding else {}  # PyTorch allows at most half the kernel
        if size + 2 * kwargs.get("padding", 0) >= k:
            return size, k, kwargs


@checks.hidden("pool_output_size")
def pool_output_size_random_default(st, ref, rng):
    """Random sizes and kernels, stride left to its default."""
    return sizes(st, ref, "pool_output_size", [valid_pool(rng, stride=False, padding=False) for _ in range(CASES)],
                 f"pool_output_size matches nn.MaxPool2d with the default stride on {CASES} sizes.")


@checks.hidden("pool_output_size", weight=2)
def pool_output_size_random_stride_padding(st, ref, rng):
    """Explicit strides (overlapping windows too) and padding."""
    return sizes(st, ref, "pool_output_size", [valid_pool(rng, stride=True, padding=True) for _ in range(CASES)],
                 f"pool_output_size matches nn.MaxPool2d with stride and padding on {CASES} settings.")


@checks.hidden("to_channels_first")
def to_channels_first_grayscale_arrays(st, ref, rng):
    """Grayscale pixels as uint8 and float64 ndarrays, and a tensor; rectangular images."""
    h, w = randint(rng, 2, 6), randint(rng, 2, 6)
    cases = [(random_pixels(rng, 3, h * w).numpy().astype(np.uint8), h, w),
             ((random_pixels(rng, 2, w * h).double() / 7).numpy(), w, h), (random_pixels(rng, 4, h * w).float(), h, w)]
    return every(channels_case, st, ref, cases, "to_channels_first handles grayscale lists, arrays and tensors.")


@checks.hidden("to_channels_first")
def to_channels_first_colour_arrays(st, ref, rng):
    """Colour pixels: RGB as a nested list and a uint8 ndarray, 4 channels as a tensor; H ≠ W."""
    h, w = randint(rng, 2, 5), randint(rng, 6, 8)
    cases = [(random_pixels(rng, 2, h * w, 3).tolist(), h, w),
             (random_pixels(rng, 3, w * h, 3).numpy().astype(np.uint8), w, h),
             (random_pixels(rng, 2, h * w, 4).float() + 0.5, h, w)]
    return every(channels_case, st, ref, cases, "to_channels_first handles colour lists, arrays and tensors.")


def random_features(rng, channels: int, h: int, w: int) -> tuple[nn.Sequential, tuple]:
    """A conv/pool stack with random (rectangular) kernels, strides, paddings, dilations; and its output (C, H, W)."""
    layers, c = [], channels
    for _ in range(randint(rng, 1, 3)):
        out, kh, kw = randint(rng, 2, 8), randint(rng, 1, 5), randint(rng, 1, 5)
        s, p, d = randint(rng, 1, 2), randint(rng, 0, 2), randint(rng, 1, 2)
        if min(h - d * (kh - 1), w - d * (kw - 1)) + 2 * p < 1:  # the kernel does not fit: a 1×1 one instead
            kh = kw = d = 1
        layers.append(nn.Conv2d(c, out, (kh, kw), stride=s, padding=p, dilation=d))
        c, h, w = out, (h + 2 * p - d * (kh - 1) - 1) // s + 1, (w + 2 * p - d * (kw - 1) - 1) // s + 1
        layers += [nn.BatchNorm2d(c), nn.ReLU()] if randint(rng, 0, 1) else [nn.ReLU()]
        k = randint(rng, 2, 3)
        if h >= k and w >= k and randint(rng, 0, 2):
            layers.append(nn.MaxPool2d(k))
            h, w = (h - k) // k + 1, (w - k) // k + 1
    return nn.Sequential(*layers), (c, h, w)


def random_classifier(rng) -> tuple[nn.Sequential, tuple]:
    n, c, h, w = randint(rng, 1, 4), randint(rng, 1, 3), randint(rng, 8, 30), randint(rng, 8, 30)
    features, (fc, fh, fw) = random_features(rng, c, h, w)
    return nn.Sequential(*features, nn.Flatten(), nn.Linear(fc * fh * fw, randint(rng, 2, 10))).eval(), (n, c, h, w)


@checks.hidden("trace_shapes")
def trace_shapes_random(st, ref, rng):
    """Random conv/pool/flatten/linear classifiers, random batch sizes and image sizes."""
    verdicts = [trace_case(st, ref, *random_classifier(rng)) for _ in range(5)]  # all five, whatever fails
    return first_failure(verdicts, "trace_shapes gives the right shapes for 5 random CNNs.")


@checks.hidden("trace_shapes")
def trace_shapes_keeps_state(st, ref, rng):
    """An eval-mode CNN with BatchNorm2d stays in eval mode; a train-mode MLP with BatchNorm1d and Dropout
    stays in train mode with its running statistics untouched; no hooks are left behind."""
    cnn, shape = random_classifier(rng)
    cnn = nn.Sequential(nn.BatchNorm2d(shape[1]), *cnn).eval()
    mlp = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    return first_failure((trace_case(st, ref, cnn, shape, state=True), trace_case(st, ref, mlp, (3, 6), state=True)),
                         "trace_shapes leaves eval-mode and train-mode models exactly as they were.")


@checks.hidden("flatten_features")
def flatten_features_random(st, ref, rng):
    """Random conv/pool stacks on random multi-channel rectangular inputs."""
    cases = []
    for _ in range(5):
        c, h, w = randint(rng, 1, 3), randint(rng, 10, 40), randint(rng, 10, 40)
        features, _ = random_features(rng, c, h, w)
        cases.append((features.eval() if randint(rng, 0, 1) else features.train(), (c, h, w), FLATTEN_HINTS))
    return every(flatten_case, st, ref, cases, "flatten_features is right for 5 random conv/pool stacks.")


@checks.hidden("flatten_features")
def flatten_features_pools_and_strides(st, ref, rng):
    """A pooling-only stack (channels unchanged), and a strided, padded, dilated stack."""
    cases = [(nn.Sequential(nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1)), (3, 33, 21), FLATTEN_HINTS),
             (nn.Sequential(nn.Conv2d(3, 6, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(6, 5, 3, dilation=2),
                            nn.MaxPool2d(2)), (3, 47, 39), FLATTEN_HINTS)]
    return every(flatten_case, st, ref, cases, "flatten_features handles pooling-only and strided, dilated stacks.")
