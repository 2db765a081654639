"""Hidden checks of the stats assignment: fresh inputs, grader only."""

import torch

from autograder.checks import CheckSet, every, randint, randn

from .public import channel_data, channel_stats_case, normalize_case, transform_case, uint8_image

checks = CheckSet()


@checks.hidden("channel_stats")
def channel_stats_small_uneven(st, ref, rng):
    """7 tiny 3-channel images in batches of 3, 3 and 1: the sample std and batch averaging are far off here."""
    return channel_stats_case(st, ref, channel_data(rng, 7, 3, 3, 5), 3)


@checks.hidden("channel_stats", weight=2)
def channel_stats_large_uneven(st, ref, rng):
    """300 RGB-like 12×12 images in batches of 64 (the last holds 44)."""
    return channel_stats_case(st, ref, channel_data(rng, 300, 3, 12, 12), 64)


@checks.hidden("channel_stats")
def channel_stats_other_channels(st, ref, rng):
    """A grayscale set (one channel) and a 5-channel set, with uneven last batches."""
    cases = [(channel_data(rng, 23, 1, 6, 6), 5), (channel_data(rng, 41, 5, 4, 7), 16)]
    return every(channel_stats_case, st, ref, cases, "channel_stats handles one channel and five channels.")


@checks.hidden("normalize")
def normalize_random(st, ref, rng):
    """Random batches and single images, statistics as lists, tuples and tensors; width = channels once."""
    cases = []
    for i in range(4):
        c = randint(rng, 1, 4)
        h, w = randint(rng, 2, 6), (c if i == 0 else randint(rng, 2, 6))
        shape = (randint(rng, 1, 3), c, h, w) if i % 2 == 0 else (c, h, w)
        mean, std = randn(rng, c), 0.2 + torch.rand(c, generator=rng) * 2
        if i in (1, 2):  # a list of floats, then a tuple
            mean, std = ((list, tuple)[i - 1](map(float, v)) for v in (mean, std))
        cases.append((randn(rng, *shape), mean, std))
    return every(normalize_case, st, ref, cases, "normalize matches transforms.Normalize on random shapes.")


@checks.hidden("make_transform")
def make_transform_grayscale(st, ref, rng):
    """A grayscale (H, W) ndarray and a grayscale PIL image, one mean and one std."""
    cases = [(uint8_image(rng, 7, 5), [0.1307], [0.3081], False), (uint8_image(rng, 4, 9), [0.5], [0.25], True)]
    return every(transform_case, st, ref, cases, "make_transform handles grayscale ndarrays and PIL images.")


@checks.hidden("make_transform")
def make_transform_rgb_ndarray(st, ref, rng):
    """An (H, W, 3) uint8 ndarray with other statistics."""
    return transform_case(st, ref, uint8_image(rng, 8, 3, 3), [0.3, 0.6, 0.2], [0.5, 0.1, 0.3], as_pil=False)
