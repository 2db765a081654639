"""Accuracy: partial credit for a trained model's predictions on a labelled split the student never sees."""

from __future__ import annotations

from typing import Any

import torch

from ..config import Threshold
from ..kernel.probe import Call
from .core import Verdict, failed
from .student import call_problem


def accuracy(call: Call, labels: torch.Tensor, threshold: Threshold, split: str = "hidden test") -> Verdict:
    """Credit for a model's logits on a labelled split: linear from `threshold.floor` to `.full`.

    The labels never leave the grader: only the model's outputs came back from the kernel.
    """
    problem = call_problem(call)
    if problem:
        return problem
    logits = call.value
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != len(labels):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else call.type
        return failed(f"{call.what} returned {shape}; expected logits of shape ({len(labels)}, classes).",
                      "The model takes (N, 1, 28, 28) images and returns (N, 10) logits.")
    acc = float((logits.argmax(dim=1) == labels).float().mean())
    credit = threshold.credit(acc)
    message = (f"accuracy on the {split} split: {acc:.4f} (full credit from {threshold.full:g}, "
               f"partial from {threshold.floor:g})")
    hint = "" if credit >= 1 else "Train longer, tune the learning rate, or check the input scaling."
    return Verdict(credit >= 1, message, hint, fraction=credit)


def model_accuracy(st: Any, ctx: Any, name: str, threshold: str, split: str = "hidden test") -> Verdict:
    """`accuracy` of the student's trained model `name` on an MNIST test split: "public test" (the student-visible
    `data/`) or "hidden test" (the grader's), run in eval mode without gradients on the model's device; credit by
    the configuration's threshold `threshold`."""
    from .data import mnist_split

    images, labels = mnist_split(ctx.data if split == "public test" else ctx.hidden / "data", "test")
    call = st.call(name, images, no_grad=True, eval_mode=True, on_model_device=True)
    return accuracy(call, labels, ctx.threshold(threshold), split=split)
