"""Hidden checks of the convolution assignment: fresh random inputs, grader only."""

import torch

from autograder.checks import CheckSet, every, first_failure, int_or_pair, randint, randn

from .public import conv2d_case, conv2d_single_case, edge_magnitude_case, max_pool2d_case

checks = CheckSet()
CASES = 6


@checks.hidden("conv2d_single")
def conv2d_single_random(st, ref, rng):
    """Random images and kernels of many shapes."""
    cases = []
    for _ in range(CASES):
        h, w = randint(rng, 4, 12), randint(rng, 4, 12)
        cases.append((randn(rng, h, w), randn(rng, randint(rng, 1, min(h, 5)), randint(rng, 1, min(w, 5)))))
    return every(conv2d_single_case, st, ref, cases, f"conv2d_single matches the reference on {CASES} random shapes.")


@checks.hidden("conv2d_single")
def conv2d_single_edge_kernels(st, ref, rng):
    """A kernel as large as the image, and a single row kernel."""
    image = randn(rng, 5, 6)
    cases = [(image, randn(rng, 5, 6)), (image, randn(rng, 1, 4))]
    return every(conv2d_single_case, st, ref, cases, "conv2d_single handles a full-size kernel and a one-row kernel.")


def conv2d_cases(st, ref, rng, summary, *options):
    """CASES random convolutions, each with the `options` (bias, stride, padding) drawn at random."""
    cases = []
    for _ in range(CASES):
        n, cin, cout = randint(rng, 1, 3), randint(rng, 1, 3), randint(rng, 1, 4)
        h, w, kh, kw = randint(rng, 5, 11), randint(rng, 5, 11), randint(rng, 1, 4), randint(rng, 1, 4)
        kwargs = {"bias": randn(rng, cout)} if "bias" in options else {}
        kwargs |= {"stride": int_or_pair(rng, 2, 3)} if "stride" in options else {}
        kwargs |= {"padding": int_or_pair(rng, 1, 2)} if "padding" in options else {}
        cases.append((randn(rng, n, cin, h, w), randn(rng, cout, cin, kh, kw), kwargs))
    return every(conv2d_case, st, ref, cases, summary)


@checks.hidden("conv2d")
def conv2d_random_shapes(st, ref, rng):
    """Random batch sizes, channels, image and (rectangular) kernel sizes; defaults otherwise."""
    return conv2d_cases(st, ref, rng, "conv2d matches F.conv2d on random shapes.")


@checks.hidden("conv2d")
def conv2d_float64(st, ref, rng):
    """float64 inputs with a bias: the result keeps the input's dtype (float64) and device."""
    x, weight, bias = randn(rng, 2, 2, 6, 5).double(), randn(rng, 3, 2, 3, 2).double(), randn(rng, 3).double()
    return conv2d_case(st, ref, x, weight, dict(bias=bias))


@checks.hidden("conv2d")
def conv2d_random_bias(st, ref, rng):
    """Random shapes with a bias."""
    return conv2d_cases(st, ref, rng, "conv2d adds the bias correctly.", "bias")


@checks.hidden("conv2d")
def conv2d_random_stride(st, ref, rng):
    """Strides given as ints and as (sh, sw) pairs."""
    return conv2d_cases(st, ref, rng, "conv2d handles int and pair strides.", "stride")


@checks.hidden("conv2d")
def conv2d_random_padding(st, ref, rng):
    """Zero padding given as ints and as (ph, pw) pairs."""
    return conv2d_cases(st, ref, rng, "conv2d handles int and pair padding.", "padding")


@checks.hidden("conv2d")
def conv2d_random_everything(st, ref, rng):
    """Stride, padding and bias together."""
    return conv2d_cases(st, ref, rng, "conv2d handles stride, padding and bias together.", "bias", "stride", "padding")


@checks.hidden("max_pool2d")
def max_pool2d_random_default_stride(st, ref, rng):
    """Random kernel sizes (ints and pairs), stride left to its default."""
    cases = [(randn(rng, randint(rng, 1, 2), randint(rng, 1, 3), randint(rng, 4, 11), randint(rng, 4, 11)),
              int_or_pair(rng, 2, 3), {}) for _ in range(CASES)]
    return every(max_pool2d_case, st, ref, cases, "max_pool2d matches F.max_pool2d with the default stride.")


@checks.hidden("max_pool2d")
def max_pool2d_random_stride(st, ref, rng):
    """Explicit strides, including overlapping windows (stride < kernel)."""
    cases = [(randn(rng, 2, randint(rng, 1, 3), randint(rng, 5, 11), randint(rng, 5, 11)), int_or_pair(rng, 2, 3),
              {"stride": int_or_pair(rng, 1, 3)}) for _ in range(CASES)]
    return every(max_pool2d_case, st, ref, cases, "max_pool2d matches F.max_pool2d with explicit strides.")


@checks.hidden("max_pool2d")
def max_pool2d_floor_mode(st, ref, rng):
    """Odd sizes where the last window would run past the input."""
    x = randn(rng, 1, 2, 7, 9)
    verdicts = [max_pool2d_case(st, ref, x, 2, {}), max_pool2d_case(st, ref, x, 3, {"stride": 2})]  # both run
    return first_failure(verdicts, "max_pool2d drops windows that would run past the input (floor mode).")


@checks.hidden("sobel")
def edge_magnitude_random(st, ref, rng):
    """Random images of several sizes."""
    images = [randn(rng, randint(rng, 3, 12), randint(rng, 3, 12)) for _ in range(CASES)]
    return every(edge_magnitude_case, st, ref, [(im,) for im in images],
                 "edge_magnitude matches the reference on random images.")


@checks.hidden("sobel")
def edge_magnitude_ramp(st, ref, rng):
    """A horizontal intensity ramp in float64: gx is constant, gy is zero, and the result stays float64."""
    return edge_magnitude_case(st, ref, torch.arange(10.0, dtype=torch.float64).repeat(7, 1))
