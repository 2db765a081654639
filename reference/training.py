"""Reference oracle for the `training` assignment, plus what typical mistakes compute.

Every entry point takes plain data only (a check-library model spec, whose `training` flag is the
mode the model arrives in, a state dict of tensors, tensors, numbers), builds the model with the
library's `build` and the loaders itself and returns plain data, so that a student's self-check can
replay the values recorded at assign time. The checks build the student's model from the same spec
and state, so both start from the same weights; both runs start from `torch.manual_seed(seed)`, so
shuffling and dropout draw the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autograder.checks.data import tensor_loader
from autograder.checks.models import build, state_of


# ---------------------------------------------------------------------------- one epoch

def _epoch(model, data, criterion, optimizer, device, zero_grad=True, train_mode=True) -> dict[str, float]:
    """One training epoch; returns the loss per sample and the two usual wrong averages."""
    if train_mode:
        model.train()
    total, seen, batch_means = 0.0, 0, []
    for x, y in data:
        x, y = x.to(device), y.to(device)
        if zero_grad:
            optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        seen += len(x)
        batch_means.append(loss.item())
    return {"loss": total / seen, "loss_unweighted": sum(batch_means) / len(batch_means),
            "loss_per_batch_count": total / len(batch_means)}


def train_epoch_run(spec, state, images, labels, batch_size, shuffle, lr, momentum, seed, variant="correct",
                    device="cpu") -> dict[str, Any]:
    """One epoch of SGD(lr, momentum) with cross-entropy from `state`, the model in the spec's mode.
    Variants: "correct", "no_zero_grad", "no_train_mode" (the mode it came in).
    Returns {"loss", "loss_unweighted", "loss_per_batch_count", "state"}."""
    model = build(spec, state).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    torch.manual_seed(seed)
    data = tensor_loader(images, labels, batch_size, shuffle)
    out = _epoch(model, data, nn.CrossEntropyLoss(), optimizer, device,
                 zero_grad=variant != "no_zero_grad", train_mode=variant != "no_train_mode")
    return {**out, "state": state_of(model)}


# ---------------------------------------------------------------------------- evaluation

def _evaluate(model, data, criterion, device, eval_mode=True) -> dict[str, float]:
    if eval_mode:
        model.eval()
    total, correct, seen, batch_losses, batch_accs = 0.0, 0, 0, [], []
    with torch.no_grad():
        for x, y in data:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = criterion(out, y).item()
            right = int((out.argmax(dim=1) == y).sum())
            total += loss * len(x)
            correct += right
            seen += len(x)
            batch_losses.append(loss)
            batch_accs.append(right / len(x))
    return {"loss": total / seen, "accuracy": correct / seen,
            "loss_unweighted": sum(batch_losses) / len(batch_losses),
            "accuracy_unweighted": sum(batch_accs) / len(batch_accs)}


def evaluate_run(spec, state, images, labels, batch_size, seed, variant="correct", device="cpu") -> dict[str, float]:
    """(loss per sample, accuracy) in eval mode; variant "train_mode" evaluates in the mode the model
    came in (the spec's: dropout and batch statistics active), drawing dropout masks after manual_seed(seed)."""
    model = build(spec, state).to(device)
    torch.manual_seed(seed)
    return _evaluate(model, tensor_loader(images, labels, batch_size), nn.CrossEntropyLoss(), device,
                     eval_mode=variant != "train_mode")


# ---------------------------------------------------------------------------- early stopping

class EarlyStopping:
    """Stop once the loss has increased over the previous epoch's for `patience` epochs in a row."""

    def __init__(self, patience: int, variant: str = "correct"):
        self.patience, self.variant = patience, variant
        self.previous, self.best, self.count = None, None, 0

    def step(self, loss: float) -> bool:
        v = self.variant
        against = self.best if v == "best" else self.previous
        if against is not None and (loss >= against if v == "equal_counts" else loss > against):
            self.count += 1
        elif v != "no_reset":
            self.count = 0
        self.previous = loss
        self.best = loss if self.best is None else min(self.best, loss)
        if v == "off_by_one":
            return self.count > self.patience
        return self.count >= self.patience


EARLY_STOPPING_VARIANTS = ("best", "equal_counts", "no_reset", "off_by_one")


def early_stopping_run(patience: int, losses: tuple, variant: str = "correct") -> list[bool]:
    """The answers of step() for `losses`, up to and including the first True."""
    stopper, out = EarlyStopping(patience, variant), []
    for loss in losses:
        out.append(stopper.step(float(loss)))
        if out[-1]:
            break
    return out


# ---------------------------------------------------------------------------- fit

def fit_run(spec, state, train, valid, lr, momentum, epochs, patience, seed, variant="correct",
            device="cpu") -> dict[str, list[float]]:
    """`train` = (images, labels, batch_size, shuffle), `valid` = (images, labels, batch_size).
    Variants: "correct", "no_early_stop" (patience ignored), "best" (early stopping against the best loss)."""
    model = build(spec, state).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    criterion = nn.CrossEntropyLoss()
    torch.manual_seed(seed)
    train_data, valid_data = tensor_loader(*train), tensor_loader(*valid)
    stopper = None
    if patience is not None and variant != "no_early_stop":
        stopper = EarlyStopping(patience, "best" if variant == "best" else "correct")
    history = {"train_loss": [], "valid_loss": [], "valid_accuracy": []}
    for _ in range(epochs):
        history["train_loss"].append(_epoch(model, train_data, criterion, optimizer, device)["loss"])
        result = _evaluate(model, valid_data, criterion, device)
        history["valid_loss"].append(result["loss"])
        history["valid_accuracy"].append(result["accuracy"])
        if stopper is not None and stopper.step(result["loss"]):
            break
    return history
