"""The operators a PyTorch expression dispatches to: the names a `Forbid(ops=...)` fragment is matched against.

The library guard (`kernel/kernel_side/guard.py`) sees each operator a student's call dispatches to, at any depth,
by its name without namespace or overload (`softmax`, `_softmax`, `conv2d`, `convolution`,
`max_pool2d_with_indices`), and refuses the call when a fragment of `Forbid.ops` is part of that name.
`torchgrade ops "F.softmax(x, dim=1)"` prints those names, so a check's author can pick fragments: `F.softmax`
is `softmax` and `_softmax`, `F.cross_entropy` is `cross_entropy_loss`, `log_softmax`, `_log_softmax` and
`nll_loss_forward`. (`detach`, `detach_` and `alias` are never listed nor forbidden: `guard.OBJECT_MAKERS`.)
"""

from __future__ import annotations

from typing import Any

import torch

from ..kernel.kernel_side.guard import ForbiddenOps


class OperatorLog(ForbiddenOps):
    """Every operator dispatched while active, at any depth, in order, each once: seen as the guard sees them
    (every operator gets a kernel at the guard's dispatch key)."""

    def __init__(self) -> None:
        super().__init__(("",), lambda kind, detail: None)  # "" is part of every name
        self.names: list[str] = []

    def hit(self, name: str) -> bool:
        if name not in self.names:
            self.names.append(name)
        return False  # and the operators it runs inside it are logged too

    def __enter__(self) -> "OperatorLog":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def expression_namespace() -> dict[str, Any]:
    """What an expression may use: torch, F, nn, and sample tensors `x` (2×3×4×4), `w` (5×3×3×3), `y` (class
    labels of x's batch), `image` (8×8) and `kernel` (3×3), all from a fixed seed."""
    g = torch.Generator().manual_seed(0)
    return {"torch": torch, "F": torch.nn.functional, "nn": torch.nn,
            "x": torch.randn(2, 3, 4, 4, generator=g), "w": torch.randn(5, 3, 3, 3, generator=g),
            "y": torch.tensor([1, 2]), "image": torch.randn(8, 8, generator=g),
            "kernel": torch.randn(3, 3, generator=g)}


def operators(expression: str, namespace: dict[str, Any] | None = None, setup: str = "") -> list[str]:
    """The aten operators evaluating `expression` (the instructor's own code, on sample tensors) dispatches to;
    `setup` (statements: inputs of other shapes, say) runs first, unrecorded."""
    namespace = expression_namespace() if namespace is None else namespace
    code = compile(expression, "<expression>", "eval")
    exec(compile(setup, "<setup>", "exec"), namespace)  # the author's own statements, on their machine
    with OperatorLog() as log:
        eval(code, namespace)  # the author's own expression, on their machine
    return log.names
