"""Hidden checks of the training assignment: fresh inputs, grader only."""

from __future__ import annotations

import torch

from autograder.checks import CheckSet, first_failure, layer, model_accuracy, randint

from .public import BN_MLP, MLP, PLAIN_MLP, early_stopping_case, evaluate_case, fit_case, train_epoch_case

checks = CheckSet()

DROPOUT_MLP = (layer("Linear", 7, 20), layer("ReLU"), layer("Dropout", 0.4), layer("Linear", 20, 5))
WIDE_PLAIN = (layer("Linear", 8, 48), layer("ReLU"), layer("Linear", 48, 4))


@checks.hidden("train_epoch")
def train_epoch_shuffled(st, ref, rng):
    """A shuffled loader (same seed for the reference), 45 samples in batches of 16, 16 and 13."""
    return train_epoch_case(st, ref, rng, DROPOUT_MLP, (45, 7, 5), 16, shuffle=True, lr=0.05, momentum=0.8)


@checks.hidden("train_epoch")
def train_epoch_from_eval_mode(st, ref, rng):
    """The model arrives in eval mode (as after evaluate): train_epoch must switch dropout back on."""
    return train_epoch_case(st, ref, rng, MLP, (30, 6, 3), 7, training=False)


@checks.hidden("evaluate")
def evaluate_dropout_only(st, ref, rng):
    """A dropout MLP sent in train mode (no BatchNorm): the loss must be the eval-mode loss."""
    return evaluate_case(st, ref, rng, DROPOUT_MLP, (37, 7, 5), 10)


@checks.hidden("evaluate")
def evaluate_batchnorm_larger(st, ref, rng):
    """BatchNorm and dropout, 130 samples in batches of 32 (last 2), sent in train mode."""
    return evaluate_case(st, ref, rng, BN_MLP, (130, 5, 4), 32)


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
        losses = [round(1.0 + 0.05 * sum(steps[:i + 1]), 2) for i in range(12)]
        cases.append((randint(rng, 1, 3), losses))
    return first_failure((early_stopping_case(st, ref, p, ls) for p, ls in cases),
                         f"EarlyStopping answers as the reference on {len(cases)} loss sequences.")


@checks.hidden("fit")
def fit_shuffled_patience(st, ref, rng):
    """A shuffled training loader (same seed for the reference) and patience=3."""
    return fit_case(st, ref, rng, WIDE_PLAIN, (80, 40), (16, True), (10,), epochs=12, patience=3, lr=0.05,
                    momentum=0.5, seed=None)


@checks.hidden("fit")
def fit_patience_not_reached(st, ref, rng):
    """patience=5 over 4 epochs: it can never trigger, all epochs run."""
    return fit_case(st, ref, rng, PLAIN_MLP, (64, 32), (8, False), (16,), epochs=4, patience=5, lr=0.05)


@checks.hidden("mnist_model", weight=3)
def mnist_hidden_test(st, ref, rng, ctx):
    """Accuracy of mnist_classifier on the 500 hidden test images."""
    return model_accuracy(st, ctx, "mnist_classifier", "mnist_model")
