"""Modules as checks see them: small models described as data, snapshots of their state, comparisons.

A model spec is `(layers, freeze, tie, training)`; a layer is `(kind, args, kwargs-pairs)` with `kind` a
`torch.nn` class name, or "Sequential" (args are layers), "Named" (args: label and layer) and "Same"
(args: label) for one module used in two places. `tie` holds (destination, source) parameter names;
`freeze` parameter names. Specs are tuples of numbers and strings, so a public check and the reference
build the same module, and a self-check can replay reference values recorded for a spec.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from ..kernel.probe import Call
from .compare import first_failure
from .student import call_problem
from .core import Verdict, failed, passed


def layer(kind, *args, **kwargs):
    """One layer of a spec: a torch.nn class name with its arguments."""
    return (kind, args, tuple(sorted(kwargs.items())))


def seq(*layers):
    return ("Sequential", layers, ())


def spec(*layers, training=False, freeze=(), tie=()):
    return (layers, tuple(freeze), tuple(tie), training)


def named(label, item):
    """A layer of a spec that appears again later in the model as `again(label)` (one module in two places)."""
    return ("Named", (label, item), ())


def again(label):
    return ("Same", (label,), ())


def as_module(model_or_spec) -> nn.Module:
    """A grader-built module as it is; a spec built (see `build`)."""
    return model_or_spec if isinstance(model_or_spec, nn.Module) else build(model_or_spec)


def build(model_spec, state=None):
    """(layers, freeze, tie, training) → a fresh nn.Sequential; with `state`, that state dict loaded into it."""
    layers, freeze, tie, training = model_spec
    named = {}

    def make(item):
        kind, args, kwargs = item
        if kind == "Sequential":
            return nn.Sequential(*(make(i) for i in args))
        if kind == "Named":
            named[args[0]] = make(args[1])
            return named[args[0]]
        if kind == "Same":
            return named[args[0]]
        return getattr(nn, kind)(*args, **dict(kwargs))

    model = nn.Sequential(*(make(i) for i in layers))
    for dst, src in tie:
        path, _, attr = dst.rpartition(".")
        setattr(model.get_submodule(path), attr, model.get_parameter(src))
    for name in freeze:
        model.get_parameter(name).requires_grad_(False)
    if state is not None:
        model.load_state_dict(state)
    return model.train(training)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state dict, on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def random_state(model_spec, rng: torch.Generator) -> dict[str, torch.Tensor]:
    """A state for `model_spec` drawn from the check's generator, the same every run on every machine: weights and
    biases 0.4·N(0, 1), normalisation scales 1 + 0.1·N(0, 1), running means 0.2·N(0, 1), running variances
    0.5 + U(0, 1); integer buffers as built."""
    state = {}
    for key, value in build(model_spec).state_dict().items():
        if not value.is_floating_point():
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=rng)
        elif key.endswith("running_mean"):
            state[key] = 0.2 * torch.randn(value.shape, generator=rng)
        elif value.dim() == 1 and "weight" in key:  # a normalisation layer's scale
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=rng)
        else:
            state[key] = 0.4 * torch.randn(value.shape, generator=rng)
    return state


def fixed(module: nn.Module, value: float = 0.5) -> nn.Module:
    """`module` with every parameter set to `value`, so that "left untouched" is visible."""
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)
    return module


def args_state(call: Call, index: int = 0) -> dict[str, torch.Tensor]:
    """The state of a module passed as the call's `index`-th argument, as it came back (`return_args=True`);
    empty where it did not come back."""
    args = call.args if call.ok and isinstance(call.args, (list, tuple)) else ()
    return args[index].state if len(args) > index and hasattr(args[index], "state") else {}


def changed_keys(before: dict, after: dict) -> list[str]:
    """The entries of state `before` that state `after` lacks or holds with other values."""
    return [k for k in before if not isinstance(after.get(k), torch.Tensor)
            or not torch.equal(after[k].cpu(), before[k].cpu())]


def output_problem(what: str, out: Any, shape: tuple, hint: str = "", dtype: torch.dtype = torch.float32
                   ) -> Verdict | None:
    """Why a module's output is not a finite `dtype` tensor of `shape`, or None; `hint` is for a wrong shape."""
    if not isinstance(out, torch.Tensor):
        return failed(f"{what} returned {'None' if out is None else type(out).__name__}, expected a tensor of "
                      f"shape {shape}.", "forward must return the network's output (is a `return` missing?).")
    if tuple(out.shape) != shape:
        return failed(f"{what} returned shape {tuple(out.shape)}, expected {shape}.", hint)
    if out.dtype != dtype:
        return failed(f"{what} returned dtype {out.dtype}, expected {dtype}.")
    if not torch.isfinite(out).all():
        return failed(f"{what} returned NaN or infinite values.")
    return None


def run_module(st: Any, cls: str, args: tuple, inputs: Sequence[torch.Tensor], judge: Callable[..., Verdict],
               summary: str, *, seed: int, eval_mode: bool = False, warmup: Sequence[torch.Tensor] = (),
               raised: Mapping[str, str] | None = None) -> Verdict:
    """Construct the student's `cls(*args)` in the kernel after torch.manual_seed(seed), move it to the grading
    device, run it without gradients on the `warmup` inputs in train mode (which fills batch-norm running
    statistics), then (in eval mode if asked) on each input; `judge(what, output, n)` judges each output (`n`: its
    batch size) until one fails, `summary` says that all passed. `raised`: hints for errors, as in call_problem."""
    shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
    mode = (f" in eval mode (after {len(warmup)} batches in train mode)" if warmup else " in eval mode"
            ) if eval_mode else ""
    what = f"{cls}({', '.join(map(repr, args))}){mode} on input {shapes}"
    then = (([("to", (st.device,), {})] if st.device != "cpu" else []) + [(None, (x,), {}) for x in warmup]
            + ([("eval", (), {})] if eval_mode else []) + [(None, (x,), {}) for x in inputs])
    call = st.call(cls, *args, seed=seed, no_grad=True, then=then, description=what)
    return call_problem(call, raised) or first_failure(
        (judge(call.what, out, len(x)) for x, out in zip(inputs, call.value[-len(inputs):])),
        f"{call.what}: {summary}.")


def describe(model: nn.Module) -> str:
    """A short picture of a model for messages: Sequential(Conv2d, BatchNorm2d, ReLU, ...)."""
    if not isinstance(model, nn.Sequential):
        return type(model).__name__
    inner = [describe(m) for m in model]
    if len(inner) > 8:
        inner = inner[:7] + [f"... {len(inner) - 7} more"]
    return f"Sequential({', '.join(inner)})"


def brief(module: nn.Module, width: int = 60) -> str:
    """A module's repr on one line, cut after an argument to at most `width` characters, for messages:
    `Conv2d(64, 128, kernel_size=(4, 4), stride=(1, 1))` → `Conv2d(64, 128, kernel_size=(4, 4), ...)`."""
    text = " ".join(repr(module).split())
    return text if len(text) <= width else text[:width - 3].rsplit(",", 1)[0] + ", ...)"


def states_close(actual: dict, expected: dict, *, rtol: float = 1e-4, atol: float = 1e-6,
                 keys: Iterable[str] | None = None) -> bool:
    """Two state dicts agree on `keys` (default: all of `expected`'s, and no other key in `actual`):
    floating tensors within the tolerances, others exactly."""
    return state_difference(actual, expected, rtol=rtol, atol=atol, keys=keys) is None


def state_difference(actual: dict, expected: dict, *, rtol: float = 1e-4, atol: float = 1e-6,
                     keys: Iterable[str] | None = None) -> str | None:
    """Where two state dicts first disagree, in words; None where they agree."""
    if keys is None and set(actual) != set(expected):
        extra = sorted(set(actual) - set(expected))
        if extra:
            return f"{extra[0]} is not expected"
    for k in (expected.keys() if keys is None else keys):
        a, e = actual.get(k), expected[k]
        if not isinstance(a, torch.Tensor):
            return f"{k} is missing"
        if a.shape != e.shape:
            return f"{k} has shape {tuple(a.shape)}, expected {tuple(e.shape)}"
        if e.is_floating_point():
            if not torch.allclose(a.double(), e.double(), rtol=rtol, atol=atol):
                return f"{k} differs by up to {float((a.double() - e.double()).abs().max()):.3g}"
        elif not torch.equal(a, e):
            return f"{k} differs"
    return None


def state_after_step(what: str, after: dict, expected: dict, before: dict, mistakes: Iterable[tuple] = (), *,
                     rtol: float = 1e-4, atol: float = 1e-6, unchanged_hint: str = "", hint: str = ""
                     ) -> Verdict | None:
    """A module's state after the student's training step (an epoch, an optimizer step) against the reference's
    `expected`: None where they agree; else a failed verdict naming the first known mistake whose state `after`
    agrees with (`mistakes`: rows (state, label, hint), the state None where that mistake cannot show), or saying
    that nothing changed from `before` (`unchanged_hint`), or where it first differs (`hint`)."""
    if states_close(after, expected, rtol=rtol, atol=atol):
        return None
    for state, label, why in mistakes:
        if state is not None and states_close(after, state, rtol=rtol, atol=atol):
            return failed(f"{what}: the parameters after the call are wrong: {label}.", why)
    if states_close(after, before, rtol=rtol, atol=atol):
        return failed(f"{what} left the parameters unchanged.", unchanged_hint)
    return failed(f"{what}: the parameters after the call differ from the reference's "
                  f"({state_difference(after, expected, rtol=rtol, atol=atol)}).", hint)


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


def with_weights(make: Callable[[], nn.Module], weights: Sequence[torch.Tensor], training: bool = False) -> nn.Module:
    """The module `make()` builds (without drawing from torch's global generator), its floating-point state
    (weights, biases, running statistics) set to `weights` in state_dict order; integer buffers as built."""
    with torch.random.fork_rng(devices=[]):  # layer initialisation must not move the caller's RNG
        model = make()
    keys = [k for k, v in model.state_dict().items() if v.is_floating_point()]
    model.load_state_dict(dict(zip(keys, weights, strict=True)), strict=False)
    return model.train(training)


def leaf_types(snapshot: Any) -> dict[str, str]:
    """A module snapshot's leaf modules (those without submodules): name → class name, e.g. {"0": "Conv2d"}."""
    names = list(snapshot.modules)
    return {n: snapshot.modules[n].rsplit(".", 1)[-1] for n in names
            if not any(m.startswith(f"{n}.") or (n == "" and m) for m in names)}


def model_call(st: Any, name: str, model: nn.Module, *args: Any, verdict: Callable[[Call], Verdict], done: str,
               state: bool = False, hooks: bool = True, running_stats: str = "") -> Verdict:
    """The student's `name(model, *args)` on a grader-built model, judged by `verdict(call)`; with `state`, the
    model must also come back as it was (parameters, buffers, train/eval mode, and hooks if `hooks`), a change
    of BatchNorm's running statistics explained by the hint `running_stats`. Passed: "`name(...)` {done}"."""
    before = module_snapshot(model) if state else None
    call = st.call(name, model, *args, return_args=state,
                   description=f"{name}({', '.join([describe(model), *map(repr, args)])})")
    verdicts = [verdict(call)]
    if state and call.ok:
        kept = state_unchanged(f"{name} on a model in {'train' if model.training else 'eval'} mode", before,
                               call.args[0], hooks=hooks)
        verdicts.append(failed(kept.message, running_stats) if running_stats and not kept.passed
                        and "running_" in kept.message else kept)
    return first_failure(verdicts, f"{call.what} {done}" + (" and leaves the model as it was." if state else "."))
