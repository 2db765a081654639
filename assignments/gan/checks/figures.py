"""Figures of the gan assignment's feedback: samples of the student's trained generator beside training digits.

The noise is drawn for the figure (not the samples checks' noise) and the digits come from the student's own
training split (`data/`); the grader's classifier and its scores do not appear.
"""

from __future__ import annotations

import torch

from autograder.checks import mnist_split
from autograder.checks.figures import FigureSet, Panel, image_row

figures = FigureSet()

ROWS = COLS = 4
LATENT_SIZE = 64


def grid(images: torch.Tensor, rows: int = ROWS, cols: int = COLS, pad: int = 2) -> torch.Tensor:
    """(rows·cols, 1, 28, 28) images in [-1, 1] tiled into one image, `pad` pixels of mid-grey between them."""
    h, w = images.shape[-2:]
    canvas = torch.zeros(rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i, image in enumerate(images[:rows * cols]):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image[0]
    return canvas


@figures.figure("samples", f"{ROWS * COLS} samples of your trained G (eval mode, noise drawn for this figure) "
                           f"beside {ROWS * COLS} digits of the training split")
def sample_grid(st, rng, ctx):
    n = ROWS * COLS
    z = torch.randn(n, LATENT_SIZE, 1, 1, generator=rng)
    call = st.call("G", z, eval_mode=True, no_grad=True, on_model_device=True,
                   description=f"G(z) in eval mode, z of shape {tuple(z.shape)}")
    samples = call.value
    if not call.ok or not isinstance(samples, torch.Tensor) or tuple(samples.shape) != (n, 1, 28, 28):
        return None
    samples = samples.detach().cpu().float().clamp(-1, 1)
    panels = [Panel(grid(samples), "your G", vmin=-1, vmax=1)]
    if ctx.data is not None:
        real, _ = mnist_split(ctx.data, "train", scale="symmetric")
        pick = torch.randperm(len(real), generator=rng)[:n]
        panels.append(Panel(grid(real[pick]), "training digits", vmin=-1, vmax=1))
    return image_row(panels, height=220)
