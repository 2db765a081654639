"""Public checks of the stats assignment. Expected values are recorded from the reference at build time (it is
always called on plain tensors: the whole data set at once, in float64); inputs come from seeded generators."""

from dataclasses import replace

import torch

from autograder.checks import (CheckSet, Misconception, OnePassLoader, as_number, batches_of, call_problem, close,
                               failed, mnist_split, randn, random_pixels, scalar, student_call, tensor_tuple,
                               undefined)

checks = CheckSet()
RTOL = 1e-4

ONE_PASS = ("Compute everything in a single pass over the loader, with running sums per channel: "
            "the pixel count, the sum of the pixels and the sum of their squares. At the end, mean = sum / count and "
            "std = sqrt(sum_sq / count - mean**2). A loader over a large data set is too slow to read twice, "
            "and some (like this one) cannot be read twice at all.")
SAMPLE_STD = ("This is the sample std (divided by N - 1, torch.std's default). The question asks for the "
              "population std, divided by N: sqrt(E[x²] - E[x]²), or torch.std(..., correction=0).")
BATCH_MEAN = ("The statistics were averaged over batches as if all batches had the same size, but the last "
              "batch is smaller. Add up sums and pixel counts over the whole loader and divide once at the end.")
BATCH_STD = ("The std was computed inside each batch (around that batch's own mean) and then averaged. "
             "Stds do not average: accumulate the sum of squares over all batches and compute "
             "sqrt(E[x²] - E[x]²) once at the end.")
IMAGE_STD = ("The std was computed inside each image (around that image's own mean) and averaged over images, as "
             "the often copied `std += images.view(b, c, -1).std(2).sum(0)` does. Stds do not average: accumulate "
             "the sum of squares of all pixels and compute sqrt(E[x²] - E[x]²) once at the end.")
PUBLISHED = ("{value} is the published statistic of the full MNIST training set (60,000 images), copied from "
             "tutorials. The shipped training split is a 4,000-image subset with statistics of its own: compute them "
             "from its pixels (datasets.MNIST(root='data', train=True, download=False), scaled to [0, 1]).")
# the full MNIST training set's mean and std, as tutorials print them (4 digits) and as they compute them
MNIST_PUBLISHED = ((0.1307, 0.1306604762738429), (0.3081, 0.3081078038564622))
BROADCAST = ("A (C,) tensor broadcasts against the LAST dimension (the width). Reshape mean and std "
             "to (C, 1, 1) so that they line up with the channel dimension.")
ORDER = ("transforms.Normalize only works on float tensors, so ToTensor must come first: "
         "transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]).")


def channel_data(rng, n, channels, h, w):
    """Pixel-like values with a different mean and spread in every channel."""
    scale = 0.25 + torch.rand(channels, generator=rng) * 2.0
    offset = torch.linspace(-0.5, 2.5, channels) + 0.2 * torch.rand(channels, generator=rng)
    return torch.rand(n, channels, h, w, generator=rng) * scale.view(1, -1, 1, 1) + offset.view(1, -1, 1, 1)


def per_image_stats(images, correction):
    """The right per-channel mean, and each image's own per-channel std averaged over images (float32, as the
    reference's)."""
    pixels = images.double().flatten(2)  # (N, C, H*W)
    return pixels.mean(dim=(0, 2)).float(), pixels.std(dim=2, correction=correction).mean(dim=0).float()


def channel_stats_case(st, ref, images, batch_size):
    """channel_stats on a one-pass loader over `images` in batches of `batch_size` (the last one smaller)."""
    expected = ref.channel_stats_of(images)
    known = [Misconception("sample std instead of population std", SAMPLE_STD, ref.sample_std_stats(images)),
             Misconception("per-batch statistics averaged with an uneven last batch", BATCH_MEAN,
                           ref.batch_mean_stats(images, batch_size))]
    known += [Misconception("std computed per batch and averaged", BATCH_STD, stats)
              for stats in (ref.batch_std_stats(images, batch_size), ref.batch_std_stats(images, batch_size, 1),
                            ref.batch_std_weighted_stats(images, batch_size))]
    known += [Misconception("std computed per image and averaged", IMAGE_STD, per_image_stats(images, correction))
              for correction in (1, 0)]
    batches = batches_of(images, torch.zeros(len(images), dtype=torch.int64), batch_size)
    call = st.call("channel_stats", OnePassLoader(batches),
                   description=f"channel_stats(loader of {len(images)} images of shape {tuple(images.shape[1:])} "
                               f"in batches of {len(batches[0][0])}, last {len(batches[-1][0])})")
    return call_problem(call, {"iterated only once": ONE_PASS}) or tensor_tuple(
        call, expected, ("mean", "std"), rtol=RTOL, atol=1e-6, misconceptions=known,
        hint="Return one value per channel as a 1-D tensor.")


@checks.public("channel_stats")
def channel_stats_small(st, ref, rng):
    """10 RGB-like 4×4 images with different channel means, in batches of 4, 4 and 2."""
    return channel_stats_case(st, ref, channel_data(rng, 10, 3, 4, 4), 4)


def normalize_case(st, ref, images, mean, std):
    as_floats = [float(m) for m in mean], [float(s) for s in std]
    expected = ref.normalize(images, *as_floats)
    channel_mean, channel_std = (torch.tensor(v).view(-1, 1, 1) for v in as_floats)
    known = [Misconception("mean and std undone instead of applied",
                           "Standardising subtracts the mean and divides by the std: (x - mean) / std.",
                           images * channel_std + channel_mean),
             Misconception("divided by the variance", "Divide by the std itself, not its square.",
                           (images - channel_mean) / channel_std**2)]
    if images.shape[-1] == len(as_floats[0]):
        known.append(Misconception(
            "the mean and std were applied along the last dimension (width), not the channels",
            "A (C,) tensor broadcasts against the LAST dimension. Reshape mean and std to (C, 1, 1) so that they "
            "line up with the channel dimension of (C, H, W) and (B, C, H, W).",
            ref.normalize_last_dim(images, *as_floats)))
    call = student_call(st, "normalize", images, mean, std)
    return call_problem(call, {"must match the size of tensor": BROADCAST}) or close(
        call, expected, rtol=1e-5, atol=1e-5, misconceptions=known, device=st.device)


@checks.public("normalize")
def normalize_batch_lists(st, ref, rng):
    """A (2, 3, 4, 5) batch, mean and std given as lists of floats."""
    return normalize_case(st, ref, randn(rng, 2, 3, 4, 5), [0.5, -0.25, 2.0], [0.5, 2.0, 0.1])


@checks.public("normalize")
def normalize_image_tensors(st, ref, rng):
    """One (3, 5, 4) image, mean and std given as 1-D tensors."""
    return normalize_case(st, ref, randn(rng, 3, 5, 4), torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.9, 1.5, 0.4]))


def uint8_image(rng, *shape):
    return random_pixels(rng, *shape, dtype=torch.uint8).numpy()


def transform_case(st, ref, pixels, mean, std, as_pil):
    """make_transform(mean, std) applied to a uint8 image given as a PIL image or an ndarray."""
    from PIL import Image

    tensor = torch.from_numpy(pixels)
    expected = ref.transform_of(tensor, tuple(mean), tuple(std))
    known = [Misconception("the image was not normalised", "Add transforms.Normalize(mean, std) after ToTensor.",
                           ref.unnormalised_transform_of(tensor)),
             Misconception("pixels were normalised on the 0-255 scale", "transforms.ToTensor() scales uint8 pixels to "
                           "[0, 1] before Normalize; the mean and std are on that scale. PILToTensor or torch.tensor("
                           "array) keep 0-255.", ref.unscaled_transform_of(tensor, tuple(mean), tuple(std)))]
    kind = f"{'PIL image' if as_pil else 'ndarray'} of shape {'(H, W, C)' if pixels.ndim == 3 else '(H, W)'}"
    call = st.call("make_transform", mean, std, then=[(None, (Image.fromarray(pixels) if as_pil else pixels,), {})],
                   description=f"make_transform({mean}, {std}) on a uint8 {kind} = {tuple(pixels.shape)}")
    if problem := call_problem(call, {"should be Tensor": ORDER, "float tensor": ORDER}):
        return problem
    value = call.value[0] if isinstance(call.value, list) and call.value else None  # the transform's result
    if isinstance(value, torch.Tensor) and value.dim() == 3 and tuple(value.shape[:2]) == pixels.shape[:2] and \
            expected.shape[0] != pixels.shape[0]:
        return failed(f"{call.what} returned shape {tuple(value.shape)}: channels last, expected "
                      f"{tuple(expected.shape)} (C, H, W).",
                      "PyTorch is channels first: transforms.ToTensor() turns (H, W, C) into (C, H, W).")
    return close(replace(call, value=value, type=type(value).__name__), expected, rtol=1e-5, atol=1e-5,
                 misconceptions=known)


@checks.public("make_transform")
def make_transform_rgb_pil(st, ref, rng):
    """An RGB PIL image 6 wide, 5 high."""
    return transform_case(st, ref, uint8_image(rng, 5, 6, 3), [0.49, 0.48, 0.45], [0.25, 0.24, 0.26], as_pil=True)


def mnist_stats_case(st, ref, ctx, which):
    """`mnist_mean` (which=0) or `mnist_std` (which=1) against the statistic of the shipped training split."""
    name = ("mnist_mean", "mnist_std")[which]
    call = st.value(name)
    if call.missing:  # said first: the same whether the data can be read here or not
        return undefined(call, "Compute it in the notebook from the MNIST training split.")
    # the raw 0-255 pixels, (N, 28, 28) as torchvision's MNIST holds them in `.data`
    train, test = (mnist_split(ctx.data, split, scale="bytes")[0][:, 0] for split in ("train", "test"))
    expected, published = ref.mnist_stats_of(train)[which], MNIST_PUBLISHED[which]
    known = [Misconception("pixels on the 0-255 scale", "Scale the pixels to [0, 1] (transforms.ToTensor() does it) "
                           "before the statistics.", 255 * expected),
             Misconception("the statistic of the test split",
                           "Use the training split: datasets.MNIST(root='data', train=True, ...).",
                           ref.mnist_stats_of(test)[which])]
    known += [Misconception("the full MNIST's published constant, not the shipped split's",
                            PUBLISHED.format(value=published[0]), value) for value in published]
    if which == 1:
        pixels = train.double().flatten(1) / 255
        known += [Misconception("std computed per image and averaged", IMAGE_STD, float(per_image))
                  for per_image in (pixels.std(dim=1).mean(), pixels.std(dim=1, correction=0).mean())]
    if as_number(call.value) is None:
        return failed(f"{name} is {call.type}, expected a float.", "Use float(...) to turn a tensor into a number.")
    return scalar(call, expected, rtol=RTOL, atol=0.0, misconceptions=known,
                  hint="Use the train split (train=True), pixels scaled to [0, 1] by ToTensor, and the population std.")


@checks.public("mnist_stats")
def mnist_mean_value(st, ref, rng, ctx):
    """mnist_mean: the mean pixel of the shipped training images, in [0, 1]."""
    return mnist_stats_case(st, ref, ctx, 0)


@checks.public("mnist_stats")
def mnist_std_value(st, ref, rng, ctx):
    """mnist_std: the population std of the shipped training pixels, in [0, 1]."""
    return mnist_stats_case(st, ref, ctx, 1)
