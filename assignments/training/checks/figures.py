"""Figures of the training assignment's feedback: the student's fit() against the reference's on real digits.

Both runs start from the same weights and `torch.manual_seed`, on digits of the student's own training split
(`data/`): the picture shows nothing the student cannot see. Small on purpose: 512 + 256 digits, a small MLP,
at most 12 epochs (well under a second for each run on a CPU).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from autograder.checks import as_numbers, build, layer, mnist_split, spec, tensor_loader
from autograder.checks.figures import FigureSet, new_figure

figures = FigureSet()

HISTORY = ("train_loss", "valid_loss", "valid_accuracy")
MODEL = (layer("Flatten"), layer("Linear", 784, 64), layer("ReLU"), layer("Dropout", 0.25), layer("Linear", 64, 10))
TRAIN, VALID, TRAIN_BATCH, VALID_BATCH = 512, 256, 32, 128
EPOCHS, PATIENCE, LR, MOMENTUM, SEED = 12, 2, 0.05, 0.9, 0
YOURS, REFERENCE = "#1f77b4", "#7f7f7f"


def initial_state(model_spec, rng: torch.Generator) -> dict[str, torch.Tensor]:
    """Weights N(0, 1/fan_in) and zero biases, drawn from the figure's generator."""
    return {k: torch.randn(v.shape, generator=rng) / v.shape[1] ** 0.5 if v.dim() == 2 else torch.zeros(v.shape)
            for k, v in build(model_spec).state_dict().items()}


def history_of(call) -> dict[str, list[float]] | None:
    """fit()'s history as three lists of floats, or None if it is not one."""
    value = call.value
    if not call.ok or not isinstance(value, dict) or any(k not in value for k in HISTORY):
        return None
    history = {k: as_numbers(value[k]) for k in HISTORY}
    return None if any(v is None or not v for v in history.values()) else history


@figures.figure("fit", f"fit(..., epochs={EPOCHS}, patience={PATIENCE}) on {TRAIN} digits of your training split "
                       f"({VALID} others for validation): your history (blue) and the reference's (grey), from the "
                       "same weights and seed")
def loss_curves(st, ref, rng, ctx):
    if ctx.data is None:
        return None
    images, labels = mnist_split(ctx.data, "train")
    order = torch.randperm(len(images), generator=rng)
    train, valid = order[:TRAIN], order[TRAIN:TRAIN + VALID]
    train_data = (images[train], labels[train], TRAIN_BATCH, True)
    valid_data = (images[valid], labels[valid], VALID_BATCH)
    model_spec = spec(*MODEL, training=True)
    state = initial_state(model_spec, rng)
    expected = ref.fit_run(model_spec, state, train_data, valid_data, LR, MOMENTUM, EPOCHS, PATIENCE, SEED,
                           "correct", st.device)
    model = build(model_spec, state)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    call = st.call("fit", model, tensor_loader(*train_data), tensor_loader(*valid_data), nn.CrossEntropyLoss(),
                   optimizer, EPOCHS, patience=PATIENCE, device=st.device, seed=SEED)
    got = history_of(call)
    if got is None:
        return None
    fig = new_figure(8, 2.9)
    loss, accuracy = fig.subplots(1, 2)
    styles = ((expected, "reference", {"color": REFERENCE, "lw": 5, "alpha": 0.35}),  # wide, beneath
              (got, "yours", {"color": YOURS, "lw": 1.5, "ms": 3}))
    for history, who, style in styles:
        marker = "o" if who == "yours" else ""
        for ax, key, dash, what in ((loss, "train_loss", "-", "train"), (loss, "valid_loss", "--", "validation"),
                                    (accuracy, "valid_accuracy", "--", f"{len(history['valid_loss'])} epochs")):
            values = history[key]
            ax.plot(range(1, len(values) + 1), values, marker + dash, label=f"{who}: {what}", **style)
    if len(expected["valid_loss"]) < EPOCHS:
        for ax in (loss, accuracy):
            ax.axvline(len(expected["valid_loss"]), color=REFERENCE, ls=":", lw=1)
        loss.text(len(expected["valid_loss"]), 0.02, "reference stops ", ha="right", color=REFERENCE, fontsize=7,
                  transform=loss.get_xaxis_transform())
    reference_losses = expected["train_loss"] + expected["valid_loss"]
    top = 2.5 * max(reference_losses)
    if any(not math.isfinite(v) or v > top for v in got["train_loss"] + got["valid_loss"]):
        loss.set_ylim(0, top)  # a diverging history leaves the chart; the reference's stays readable
        loss.text(0.98, 0.95, "yours leaves the chart", ha="right", va="top", fontsize=8, color=YOURS,
                  transform=loss.transAxes)
    loss.set_title("loss per sample", fontsize=9)
    accuracy.set_title("validation accuracy", fontsize=9)
    for ax in (loss, accuracy):
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig
