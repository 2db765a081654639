"""Hidden checks of the classify assignment: fresh inputs and the hidden test split, grader only."""

import torch

from autograder.checks import CheckSet, every, keep_output, randint, randn

from .public import (activations_case, classifier_weights, cnn_weights, confusion_case, error_case, predict_case,
                     probe_cnn, scored_accuracy)

checks = CheckSet()


@checks.hidden("predict")
def predict_batches(st, ref, rng):
    """37 images in batches of 8, and 300 images with the default batch size (256 + 44)."""
    cases = [(classifier_weights(rng, 25, 12, 7), randn(rng, 37, 1, 5, 5), {"batch_size": 8}),
             (classifier_weights(rng, 16, 10, 10), randn(rng, 300, 1, 4, 4), {})]
    return every(predict_case, st, ref, cases, "predict labels every image, whatever the batch size.")


@checks.hidden("predict")
def predict_batch_edges(st, ref, rng):
    """Batches of one image, and a batch size larger than the number of images."""
    cases = [(classifier_weights(rng, 9, 6, 3), randn(rng, 5, 1, 3, 3), {"batch_size": 1}),
             (classifier_weights(rng, 12, 8, 4), randn(rng, 6, 3, 2, 2), {"batch_size": 50})]
    return every(predict_case, st, ref, cases, "predict handles batches of one image and a batch larger than the data.")


def random_labels(rng: torch.Generator, n: int, classes: int, wrong: float) -> tuple[torch.Tensor, torch.Tensor]:
    """n true labels, and predictions of which a fraction `wrong` (on average) are changed."""
    y_true = torch.randint(0, classes, (n,), generator=rng)
    change = torch.rand(n, generator=rng) < wrong
    shift = torch.randint(1, classes, (n,), generator=rng)
    return y_true, torch.where(change, (y_true + shift) % classes, y_true)


@checks.hidden("classification_error")
def error_random(st, ref, rng):
    """Random labels of several sizes, an all-correct and an all-wrong prediction, a single sample."""
    cases = [random_labels(rng, randint(rng, 20, 200), 10, 0.1 + 0.3 * i) for i in range(4)]
    y = torch.randint(0, 10, (40,), generator=rng)
    cases += [(y, y.clone()), (y, (y + 1) % 10), (torch.tensor([7]), torch.tensor([1]))]
    return every(error_case, st, ref, cases,
                 "classification_error is right on random, perfect, all-wrong and one-sample predictions.")


@checks.hidden("confusion_matrix")
def confusion_random(st, ref, rng):
    """Random labels: 10 classes and 200 samples, 3 classes and 30 samples, and more."""
    cases = [(*random_labels(rng, randint(rng, 10, 200), k, 0.4), k) for _ in range(4)
             for k in [randint(rng, 2, 10)]]  # the number of classes drawn first
    return every(confusion_case, st, ref, cases,
                 "confusion_matrix counts every (true, predicted) pair on random labels.")


@checks.hidden("confusion_matrix")
def confusion_missing_classes(st, ref, rng):
    """num_classes=6 while only classes 0-3 occur; and a single sample."""
    cases = [(*random_labels(rng, 50, 4, 0.5), 6), (torch.tensor([2]), torch.tensor([0]), 3)]
    return every(confusion_case, st, ref, cases,
                 "confusion_matrix is num_classes × num_classes even when classes are missing.")


@checks.hidden("activations")
def activations_all_layers(st, ref, rng):
    """Every layer, the two containers among them, asked in an order that is not the call order."""
    names = ["classifier.3", "features.1", "features", "classifier.0", "features.3", "classifier",
             "features.0", "classifier.1", "features.2", "classifier.2"]
    return activations_case(st, ref, cnn_weights(rng), randn(rng, 3, 1, 8, 8), names)


@checks.hidden("activations")
def activations_other_size(st, ref, rng):
    """Five 12×12 images through a wider probe CNN; one layer asked for."""
    weights = cnn_weights(rng, size=12, channels=5, hidden=7, classes=3)
    return activations_case(st, ref, weights, randn(rng, 5, 1, 12, 12), ["classifier.1"])


@checks.hidden("activations")
def activations_existing_hook(st, ref, rng):
    """A model that already has a forward hook of its own: it must still be there afterwards."""
    weights = cnn_weights(rng)
    model = probe_cnn(weights)
    model.get_submodule("classifier.1").register_forward_hook(keep_output)  # importable in the kernel: picklable
    return activations_case(st, ref, weights, randn(rng, 2, 1, 8, 8), ["features.2", "classifier.1"], model=model)


@checks.hidden("mlp_accuracy", weight=3)
def mlp_hidden_accuracy(st, ref, rng, ctx):
    """`mlp` is fully connected; its accuracy on the hidden test split (500 images)."""
    return scored_accuracy(st, ctx, "mlp", "hidden test")


@checks.hidden("cnn_accuracy", weight=3)
def cnn_hidden_accuracy(st, ref, rng, ctx):
    """`cnn` has convolution layers; its accuracy on the hidden test split (500 images)."""
    return scored_accuracy(st, ctx, "cnn", "hidden test")
