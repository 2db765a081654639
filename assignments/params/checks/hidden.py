"""Hidden checks of the params assignment (grader only): random layers, and models built here and given to the
reference as they are (it counts a deep copy, which keeps shared parameters shared)."""

import torch.nn as nn

from autograder.checks import CheckSet, describe, every, first_failure, randint

from .public import TRAINABLE_ONLY, conv_case, count_case, linear_case, summary_case

checks = CheckSet()
CASES = 12
BIAS = ({}, {"bias": True}, {"bias": False})  # the bias left to its default, on, off


@checks.hidden("linear_params")
def linear_params_random(st, ref, rng):
    """Random layer sizes, with the bias left to its default, on, or off."""
    cases = [((randint(rng, 1, 5000), randint(rng, 1, 500)), kwargs) for _ in range(CASES)
             for kwargs in [BIAS[randint(rng, 0, 2)]]]  # the bias drawn before the sizes
    return every(linear_case, st, ref, cases, f"linear_params matches nn.Linear on {CASES} random layers.")


def kernel(rng):
    return randint(rng, 1, 7) if randint(rng, 0, 1) else (randint(rng, 1, 7), randint(rng, 1, 7))


@checks.hidden("conv2d_params")
def conv2d_params_random(st, ref, rng):
    """Random channels, square and rectangular kernels (int or pair), bias default/on/off."""
    cases = [((randint(rng, 1, 64), randint(rng, 1, 128), kernel(rng)), BIAS[i % 3]) for i in range(CASES)]
    return every(conv_case, st, ref, cases, f"conv2d_params matches nn.Conv2d on {CASES} random layers.")


@checks.hidden("conv2d_params")
def conv2d_params_random_groups(st, ref, rng):
    """Random grouped and depthwise convolutions, with and without bias."""
    cases = [((g * randint(rng, 1, 6), g * randint(rng, 1, 6), kernel(rng)), {"groups": g, **BIAS[0 if i % 2 else 2]})
             for i in range(CASES) for g in [randint(rng, 2, 8)]]  # the groups drawn first
    return every(conv_case, st, ref, cases, f"conv2d_params matches nn.Conv2d with groups on {CASES} random layers.")


def random_block(rng, channels: int, depth: int = 0) -> tuple[nn.Module, int]:
    """A random conv block (maybe nested) keeping the spatial size; returns it and its output channels."""
    out = randint(rng, 2, 12)
    layers: list[nn.Module] = [nn.Conv2d(channels, out, 3, padding=1, bias=bool(randint(rng, 0, 1)))]
    if randint(rng, 0, 1):
        layers.append(nn.BatchNorm2d(out))
    layers.append([nn.ReLU(), nn.LeakyReLU(), nn.Tanh()][randint(rng, 0, 2)])
    if depth < 2 and randint(rng, 0, 1):
        inner, out = random_block(rng, out, depth + 1)
        layers.append(inner)
    return nn.Sequential(*layers), out


def random_cnn(rng) -> tuple[nn.Sequential, tuple[int, ...]]:
    """Nested conv blocks, a pool, and an MLP head (Flatten, Linear, maybe LayerNorm/Dropout, Linear)."""
    n, c, h, w = randint(rng, 1, 3), randint(rng, 1, 3), 2 * randint(rng, 3, 8), 2 * randint(rng, 3, 8)
    blocks, channels = [], c
    for _ in range(randint(rng, 1, 2)):
        block, channels = random_block(rng, channels)
        blocks.append(block)
    hidden = randint(rng, 4, 32)
    head = [nn.Flatten(), nn.Linear(channels * (h // 2) * (w // 2), hidden)]
    if randint(rng, 0, 1):
        head.append(nn.LayerNorm(hidden))
    head += [nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, randint(rng, 2, 10))]
    return nn.Sequential(*blocks, nn.MaxPool2d(2), nn.Sequential(*head)).eval(), (n, c, h, w)


@checks.hidden("count_params")
def count_params_random_nested(st, ref, rng):
    """Random nested CNNs with BatchNorm2d and LayerNorm, all trainable."""
    models = [random_cnn(rng)[0] for _ in range(4)]
    return first_failure((count_case(st, ref, m, describe(m), **kw) for m in models for kw in TRAINABLE_ONLY[:2]),
                         "count_params is right for random nested CNNs.")


@checks.hidden("count_params")
def count_params_random_frozen_shared(st, ref, rng):
    """Random CNNs with frozen blocks, a module shared by two containers, and tied weights."""
    cases = []
    for _ in range(3):
        model, _ = random_cnn(rng)
        model[0].requires_grad_(False)  # a frozen backbone block, as in fine-tuning
        size = randint(rng, 3, 9)
        shared = nn.Linear(size, size)  # one module in two containers
        model.extend([nn.Sequential(shared, nn.ReLU()), nn.Sequential(nn.Sequential(shared, nn.Tanh()))])
        first, last = nn.Linear(size, size), nn.Linear(size, size)
        last.weight = first.weight  # tied weights between two direct children
        model.extend([first, nn.ReLU(), last])
        label = f"{describe(model)} with model[0] frozen, a Linear in two containers and tied weights"
        cases += [(model, label, kw) for kw in TRAINABLE_ONLY[:2]]
    return first_failure((count_case(st, ref, m, label, **kw) for m, label, kw in cases),
                         "count_params counts shared parameters once and respects trainable_only.")


@checks.hidden("summary")
def summary_random(st, ref, rng):
    """Random nested CNNs with an MLP head, in eval mode."""
    return first_failure((summary_case(st, ref, m, shape) for m, shape in [random_cnn(rng) for _ in range(4)]),
                         "summary is right for random nested CNNs.")


@checks.hidden("summary")
def summary_keeps_eval_mode(st, ref, rng):
    """An eval-mode CNN with BatchNorm2d: the table, unchanged statistics, still in eval mode after."""
    model, shape = random_cnn(rng)
    model = nn.Sequential(nn.BatchNorm2d(shape[1]), *model).eval()
    return summary_case(st, ref, model, shape, state=True)
