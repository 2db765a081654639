"""Reference oracle for the `classify` assignment: torch's own functional operators, not a model answer.

The checks send student functions small grader-built networks. Their weights are drawn from the
check's seeded generator and passed here as a tuple of tensors, so the reference computes the
expected values with `torch.nn.functional` on the same weights (and a student's self-check can
replay them: every argument is a tensor, a number or a tuple).

- `probe classifier` (predict): Flatten → Linear → BatchNorm1d → ReLU → Linear;
  weights = (w1, b1, bn_weight, bn_bias, running_mean, running_var, w2, b2).
- `probe CNN` (capture_activations): `features` = Conv2d(3×3, padding 1), BatchNorm2d, ReLU,
  MaxPool2d(2); `classifier` = Flatten, Linear, ReLU, Linear;
  weights = (conv_w, conv_b, bn_weight, bn_bias, running_mean, running_var, w1, b1, w2, b2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BN_EPS = 1e-5  # nn.BatchNorm1d / nn.BatchNorm2d default


# ------------------------------------------------------------------------------ metrics

def classification_error(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Fraction of wrong labels, counted exactly in integers."""
    return int((y_true.cpu() != y_pred.cpu()).sum()) / len(y_true)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 (num_classes, num_classes): entry [t, p] counts samples of true class t predicted as p."""
    index = y_true.cpu().long() * num_classes + y_pred.cpu().long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


# Known wrong answers, for diagnostics.

def classification_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """The fraction of correct labels: the error's complement, returned by mistake."""
    return 1.0 - classification_error(y_true, y_pred)


def error_count(y_true: torch.Tensor, y_pred: torch.Tensor) -> int:
    """The number of wrong labels, not divided by the number of samples."""
    return int((y_true.cpu() != y_pred.cpu()).sum())


def transposed_confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows predicted, columns true: the arguments' roles swapped."""
    return confusion_matrix(y_pred, y_true, num_classes)


# ------------------------------------------------------------------ predict (probe classifier)

def classifier_logits(weights: tuple[torch.Tensor, ...], images: torch.Tensor, training: bool = False) -> torch.Tensor:
    """The probe classifier's logits; `training=True` normalises with the batch's own statistics."""
    w1, b1, bn_w, bn_b, mean, var, w2, b2 = weights
    h = F.linear(images.flatten(1), w1, b1)
    h = F.batch_norm(h, mean.clone(), var.clone(), bn_w, bn_b, training=training, eps=BN_EPS)
    return F.linear(F.relu(h), w2, b2)


def predict(weights: tuple[torch.Tensor, ...], images: torch.Tensor) -> torch.Tensor:
    """int64 labels of the most activated output, in eval mode (each sample on its own)."""
    return classifier_logits(weights, images).argmax(dim=1)


def train_mode_predict(weights: tuple[torch.Tensor, ...], images: torch.Tensor,
                       batch_size: int | None = None) -> torch.Tensor | None:
    """Labels a model left in train mode gives, batch by batch (None: one batch; None back if it cannot run)."""
    chunks = images.split(batch_size) if batch_size else (images,)
    if any(len(c) < 2 for c in chunks):  # BatchNorm refuses a batch of one in train mode
        return None
    return torch.cat([classifier_logits(weights, c, training=True).argmax(dim=1) for c in chunks])


# ---------------------------------------------------------- capture_activations (probe CNN)

def cnn_layers(weights: tuple[torch.Tensor, ...], images: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name (as in named_modules) → (input, output) for every submodule of the probe CNN."""
    conv_w, conv_b, bn_w, bn_b, mean, var, w1, b1, w2, b2 = weights
    steps = {
        "features.0": lambda x: F.conv2d(x, conv_w, conv_b, padding=1),
        "features.1": lambda x: F.batch_norm(x, mean.clone(), var.clone(), bn_w, bn_b, training=False, eps=BN_EPS),
        "features.2": F.relu,
        "features.3": lambda x: F.max_pool2d(x, 2),
        "classifier.0": lambda x: x.flatten(1),
        "classifier.1": lambda x: F.linear(x, w1, b1),
        "classifier.2": F.relu,
        "classifier.3": lambda x: F.linear(x, w2, b2),
    }
    layers, x = {}, images
    for name, step in steps.items():
        layers[name] = (x, step(x))
        x = layers[name][1]
    layers["features"] = (images, layers["features.3"][1])
    layers["classifier"] = (layers["features.3"][1], x)
    return layers


def activations(weights: tuple[torch.Tensor, ...], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output of every named submodule of the probe CNN for one forward pass."""
    with torch.no_grad():
        return {name: out for name, (_, out) in cnn_layers(weights, images).items()}


def layer_inputs(weights: tuple[torch.Tensor, ...], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a hook that stores `input[0]` instead of `output` captures."""
    with torch.no_grad():
        return {name: inp for name, (inp, _) in cnn_layers(weights, images).items()}
