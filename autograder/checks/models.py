"""Modules as checks see them: snapshots of their state, and whether a call left them as they were."""

from __future__ import annotations

from typing import Any

import torch

from .core import Verdict, failed, passed


def module_snapshot(model: torch.nn.Module) -> Any:
    """The same `ModuleSnapshot` the probe returns for a student-side module, for a grader-side one."""
    from ..kernel import codec, kernel_side

    return codec.from_plain(kernel_side.to_plain(model))


def state_unchanged(what: str, before: Any, after: Any, mode: bool = True, hooks: bool = True) -> Verdict:
    """A call left a module's parameters and buffers (and, if asked, train/eval mode and hooks) as they were."""
    if not hasattr(after, "state"):
        return failed(f"{what}: the model did not come back from the call.")
    changed = [k for k in before.state if k not in after.state or not torch.equal(before.state[k], after.state[k])]
    if changed:
        return failed(f"{what} changed the model's parameters or buffers ({', '.join(changed[:4])}).",
                      "Run the forward pass in eval mode under torch.no_grad(), and restore what you change.")
    if mode and before.training != after.training:
        return failed(f"{what} left the model in {'train' if after.training else 'eval'} mode; it was in "
                      f"{'train' if before.training else 'eval'} mode.", "Restore the mode you found: "
                      "remember model.training before, and call model.train(was_training) after.")
    if hooks and before.hooks != after.hooks:
        return failed(f"{what} left hooks on the model: {after.hooks} (before: {before.hooks}).",
                      "Keep the handle that register_forward_hook returns and call handle.remove().")
    return passed(f"{what} left the model as it was.")
