"""Hidden checks of the training assignment: fresh inputs, grader only."""

from __future__ import annotations

import torch

from autograder.checks import CheckSet, accuracy, first_failure, randint
from autograder.mnist import load_hidden_test

from .public import (BN_MLP, MLP, PLAIN_MLP, classification_data, early_stopping_case, evaluate_case, fit_case,
                     fit_data, init_state, train_epoch_case)

checks = CheckSet()

DROPOUT_MLP = (("linear", 7, 20), ("relu",), ("dropout", 0.4), ("linear", 20, 5))
WIDE_PLAIN = (("linear", 8, 48), ("relu",), ("linear", 48, 4))


@checks.hidden("train_epoch")
def train_epoch_shuffled(st, ref, rng):
    """A shuffled loader (same seed for the reference), 45 samples in batches of 16, 16 and 13."""
    x, y = classification_data(rng, 45, 7, 5)
    return train_epoch_case(st, ref, DROPOUT_MLP, init_state(DROPOUT_MLP, rng), x, y, 16, shuffle=True, lr=0.05,
                            momentum=0.8, seed=randint(rng, 0, 10_000))


@checks.hidden("train_epoch")
def train_epoch_from_eval_mode(st, ref, rng):
    """The model arrives in eval mode (as after evaluate): train_epoch must switch dropout back on."""
    x, y = classification_data(rng, 30, 6, 3)
    return train_epoch_case(st, ref, MLP, init_state(MLP, rng), x, y, 7, seed=randint(rng, 0, 10_000),
                            training=False)


@checks.hidden("evaluate")
def evaluate_dropout_only(st, ref, rng):
    """A dropout MLP sent in train mode (no BatchNorm): the loss must be the eval-mode loss."""
    x, y = classification_data(rng, 37, 7, 5)
    return evaluate_case(st, ref, DROPOUT_MLP, init_state(DROPOUT_MLP, rng), x, y, 10, seed=randint(rng, 0, 10_000))


@checks.hidden("evaluate")
def evaluate_batchnorm_larger(st, ref, rng):
    """BatchNorm and dropout, 130 samples in batches of 32 (last 2), sent in train mode."""
    x, y = classification_data(rng, 130, 5, 4)
    return evaluate_case(st, ref, BN_MLP, init_state(BN_MLP, rng), x, y, 32, seed=randint(rng, 0, 10_000))


@checks.hidden("early_stopping", weight=2)
def early_stopping_sequences(st, ref, rng):
    """Handmade sequences that separate previous from best, strict from non-strict, reset from no reset,
    plus random walks with ties, for patience 1 to 3."""
    cases = [
        (3, [2.0, 1.5, 1.6, 1.7, 1.65, 1.7, 1.8, 1.9, 2.0]),
        (2, [1.0, 1.1, 1.0, 1.1, 1.0, 1.1, 1.2]),
        (2, [0.9, 0.8, 0.8, 0.8, 0.85, 0.85, 0.9, 1.0]),
        (1, [0.3, 0.2, 0.1, 0.05]),
    ]
    for _ in range(4):
        steps = torch.randint(-2, 3, (12,), generator=rng).tolist()
        losses, value = [], 1.0
        for s in steps:
            value += 0.05 * s
            losses.append(round(value, 2))
        cases.append((randint(rng, 1, 3), losses))
    return first_failure((early_stopping_case(st, ref, p, ls) for p, ls in cases),
                         f"EarlyStopping answers as the reference on {len(cases)} loss sequences.")


@checks.hidden("fit")
def fit_shuffled_patience(st, ref, rng):
    """A shuffled training loader (same seed for the reference) and patience=3."""
    (tx, ty), (vx, vy) = fit_data(rng, 80, 40)
    return fit_case(st, ref, WIDE_PLAIN, init_state(WIDE_PLAIN, rng), (tx, ty, 16, True), (vx, vy, 10), epochs=12,
                    patience=3, lr=0.05, momentum=0.5, seed=randint(rng, 0, 10_000))


@checks.hidden("fit")
def fit_patience_not_reached(st, ref, rng):
    """patience=5 over 4 epochs: it can never trigger, all epochs run."""
    (tx, ty), (vx, vy) = fit_data(rng)
    return fit_case(st, ref, PLAIN_MLP, init_state(PLAIN_MLP, rng), (tx, ty, 8, False), (vx, vy, 16), epochs=4,
                    patience=5, lr=0.05)


@checks.hidden("mnist_model", weight=3)
def mnist_hidden_test(st, ref, rng, ctx):
    """Accuracy of mnist_classifier on the 500 hidden test images."""
    images, labels = load_hidden_test(ctx.hidden / "data")
    call = st.call("mnist_classifier", images, no_grad=True, eval_mode=True, on_model_device=True)
    return accuracy(call, labels, ctx.threshold("mnist_model"))
