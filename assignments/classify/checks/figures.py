"""Figures of the classify assignment's feedback: confusion matrices of the student's trained models.

Each matrix is computed by the grader from the model's outputs on the public test split (`data/`, which the
student has), never on the hidden test split, so the picture shows nothing the student cannot compute.
"""

from __future__ import annotations

import torch

from autograder.checks import mnist_split
from autograder.checks.figures import FigureSet, new_figure

figures = FigureSet()

CLASSES = 10


def confusion_figure(st, ref, ctx, name: str):
    """`name`'s confusion matrix on the public test split, counts in the cells; None if there is no such model."""
    if ctx.data is None:
        return None
    images, labels = mnist_split(ctx.data, "test")
    call = st.call(name, images, no_grad=True, eval_mode=True, on_model_device=True,
                   description=f"{name}(images {tuple(images.shape)})")
    logits = call.value
    if not call.ok or not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(labels), CLASSES):
        return None
    predicted = logits.detach().cpu().argmax(dim=1)
    matrix = ref.confusion_matrix(labels, predicted, CLASSES).numpy()
    accuracy = float((predicted == labels).float().mean())
    fig = new_figure(4.2, 3.9)
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    top = int(matrix.max())
    for t in range(CLASSES):
        for p in range(CLASSES):
            count = int(matrix[t, p])
            if count:
                ax.text(p, t, str(count), ha="center", va="center", fontsize=7,
                        color="white" if count > top / 2 else "black")
    ax.set_xticks(range(CLASSES))
    ax.set_yticks(range(CLASSES))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("predicted digit", fontsize=8)
    ax.set_ylabel("true digit", fontsize=8)
    ax.set_title(f"`{name}`: {accuracy:.1%} of {len(labels)} public test digits right", fontsize=9)
    return fig


@figures.figure("mlp_accuracy", "Confusion matrix of your `mlp` on the public test split (rows: true digit, "
                                "columns: predicted)")
def mlp_confusion(st, ref, ctx):
    return confusion_figure(st, ref, ctx, "mlp")


@figures.figure("cnn_accuracy", "Confusion matrix of your `cnn` on the public test split (rows: true digit, "
                                "columns: predicted)")
def cnn_confusion(st, ref, ctx):
    return confusion_figure(st, ref, ctx, "cnn")
