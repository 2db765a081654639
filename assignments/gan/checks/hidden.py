"""Hidden checks of the gan assignment: other latent sizes, batch sizes and models, and the scores
of the trained generator's samples under the grader's own MNIST classifier."""

from __future__ import annotations

import torch
import torch.nn as nn

from autograder.checks import (CheckSet, Verdict, call_problem, changed_keys, failed, first_failure, fixed, passed,
                               randint, randn)

from .public import conv_case, discriminator_case, generator_case, reinit, samples, train_step_case

checks = CheckSet()


@checks.hidden("generator")
def generator_other_latent_size(st, ref, rng):
    """Generator(16) on 5 noise vectors of size 16: the first layer follows latent_size."""
    return generator_case(st, 16, [5], randint(rng, 0, 2**30))


@checks.hidden("generator")
def generator_single_image_eval_mode(st, ref, rng):
    """Generator(64) run on 60 batches in train mode (batch-norm statistics), then in eval mode on 1 and on 3
    noise vectors: shapes (1, 1, 28, 28) and (3, 1, 28, 28), values in [-1, 1]."""
    return generator_case(st, 64, [1, 3], randint(rng, 0, 2**30), eval_mode=True, warmup=60)


@checks.hidden("discriminator")
def discriminator_other_batch_sizes(st, ref, rng):
    """Discriminator() in eval mode on 1 image and on 5: shapes (1, 1) and (5, 1)."""
    return discriminator_case(st, [1, 5], randint(rng, 0, 2**30), eval_mode=True)


@checks.hidden("weights_init")
def weights_init_other_convolutions(st, ref, rng):
    """Conv2d(1, 256, 7, bias=False) and ConvTranspose2d(64, 32, 4, 2, 1, bias=False): weights ~ N(0, 0.02²)."""
    seed = randint(rng, 0, 2**30)
    layers = [fixed(nn.Conv2d(1, 256, 7, bias=False), -0.5), fixed(nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False))]
    verdicts = [conv_case(st, layer, seed + i) for i, layer in enumerate(layers)]  # both layers, whatever the first
    return first_failure(verdicts, "weights_init draws convolution weights from N(0, 0.02²) for other shapes too.")


def untouched_case(st, module, seed) -> Verdict:
    """weights_init(module) neither raises nor changes anything."""
    call, state = reinit(st, module, seed)
    problem = call_problem(call)
    if problem:
        return failed(problem.message, "weights_init is called on every submodule by model.apply: modules other "
                                       "than Conv2d, ConvTranspose2d and BatchNorm2d must pass through untouched "
                                       "(check the type with isinstance first).")
    changed = changed_keys(module.state_dict(), state)
    return failed(f"{call.what} changed {', '.join(changed)}.", "Only Conv2d, ConvTranspose2d and BatchNorm2d are "
                  "re-initialised; leave every other module (nn.Linear included) as it is.") if changed else passed("")


@checks.hidden("weights_init")
def weights_init_leaves_other_modules(st, ref, rng):
    """nn.Linear, activations, nn.Flatten and an nn.Sequential container: no error, nothing changed."""
    seed = randint(rng, 0, 2**30)
    conv = fixed(nn.Conv2d(3, 8, 3))
    call, state = reinit(st, conv, seed - 1)
    if call_problem(call) or not state or torch.equal(state["weight"], conv.weight.detach()):
        return call_problem(call) or failed(f"{call.what} left the weights as they were, so leaving the other "
                                            "modules alone proves nothing yet.",
                                            "Re-initialise Conv2d, ConvTranspose2d and BatchNorm2d first.")
    modules = [fixed(nn.Linear(32, 16), 0.25), nn.ReLU(), nn.LeakyReLU(0.2), nn.Tanh(), nn.Flatten(),
               fixed(nn.Sequential(nn.Linear(8, 4), nn.Sigmoid()), 0.25)]
    return first_failure((untouched_case(st, module, seed + i) for i, module in enumerate(modules)),
                         "weights_init leaves Linear layers, activations and containers untouched.")


@checks.hidden("train_step")
def train_step_other_models(st, ref, rng):
    """Another small G (latent 12) and D, a batch of 6, Adam(lr=2e-4): numbers and states after one step."""
    return train_step_case(st, ref, rng, latent_size=12, batch=6, width=6, lr=2e-4)


@checks.hidden("samples", weight=5)
def samples_score(st, ref, rng, ctx):
    """512 samples of the trained G scored by the grader's MNIST classifier (inception-style score, label entropy)."""
    call, problem = samples(st, randn(rng, 512, 64, 1, 1))
    if problem:
        return problem
    scores = ref.sample_scores(call.value, ref.load_scorer(ctx.hidden))
    t_is, t_h = ctx.threshold("gan_inception"), ctx.threshold("gan_entropy")
    c_is, c_h = t_is.credit(scores["inception"]), t_h.credit(scores["entropy"])
    credit = min(c_is, c_h)
    digits = ", ".join(f"{d}: {p:.0%}" for d, p in enumerate(scores["histogram"]))
    message = (f"512 samples of G: inception-style score {scores['inception']:.2f} (full credit from {t_is.full:g}, "
               f"partial from {t_is.floor:g}); entropy of the predicted digits {scores['entropy']:.2f} (full credit "
               f"from {t_h.full:g}, partial from {t_h.floor:g}; ln 10 = 2.30). Predicted digits: {digits}.")
    hint = next((hint for wrong, hint in (
        (scores["inception"] < 1.1 and scores["entropy"] < 0.1, "Every sample falls in the same class, as for an "
         "untrained or fully collapsed generator: check that the training cell ran to its end and that train_step "
         "passes its checks."),
        (c_h < c_is, "Few kinds of digit come out: the generator has (partly) collapsed onto some modes. Check "
         "train_step (labels, detach, order of the two steps) and train again."),
        (credit < 1, "The classifier is not confident that your samples are digits. Check train_step and the "
         "training loop (weights_init applied, Adam with lr=1e-3 and betas=(0.5, 0.999), all epochs)."),
    ) if wrong), "")
    return Verdict(credit >= 1, message, hint, fraction=credit)
