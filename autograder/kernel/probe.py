"""The probe: how a check asks the student's code for a value or a call's result.

Two student sides share one interface (`value`, `call`), so a check is written once:
- `KernelStudent` (grading): each request crosses into the sandboxed kernel once, through
  the session's probe channel and the codec; student code never sees the grader's process.
  What the library guard saw comes from the integrity channel, never from the answer.
- `LocalStudent` (self-check): the student's own namespace, in the student's own process.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Protocol

from ..errors import ProbeError
from . import codec, kernel_side


class ProbeFault(ProbeError):
    """The probe failed on the grader's side of a call (the request, its arguments, eval()): the check that
    asked is an `error` of phase `probe`, never the student's function failing."""


@dataclass(frozen=True)
class Forbid:
    """Library functions a student's call must not use: aten operator name fragments, plus Python
    modules whose functions are refused (only those whose names hold one of `names`, if given).

    A call that uses one fails its check, whatever it returned: "<call> used library code that this question does
    not allow (<operator>)", with the hint "Write it yourself with loops or plain tensor operations (indexing,
    slicing, sums)" (`call_problem`; a check of your own may test `call.forbidden` first to say otherwise)."""

    ops: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def as_request(self) -> dict[str, tuple[str, ...]]:
        return {"ops": self.ops, "modules": self.modules, "names": self.names} if self else {}

    def __bool__(self) -> bool:
        return bool(self.ops or self.modules)


@dataclass(frozen=True)
class Call:
    """What a student's name gave back: a value, or why there is none. Data, never raised.

    `value`: what it returned (tensors on the CPU, detached); `error`: what it raised, as "Type: message (in your
    code, line n: ...)"; `missing`: the name is not defined; `forbidden`: the library operators of a `Forbid` it
    used; `ok`: none of those; `what`: how messages name the call, e.g. "conv2d(tensor(2, 3, 8, 8), ...)"."""

    target: str
    value: Any = None
    error: str | None = None
    missing: bool = False
    forbidden: tuple[str, ...] = ()
    seconds: float = 0.0
    type: str | None = None
    devices: tuple[str, ...] = ()
    args: Any = None
    description: str = ""
    requires_grad: bool = False  # the value was a tensor that requires grad (it arrives detached)

    @property
    def ok(self) -> bool:
        return not (self.error or self.missing or self.forbidden)

    @property
    def what(self) -> str:
        return self.description or self.target

    @classmethod
    def from_response(cls, target: str, response: Mapping[str, Any], description: str = "") -> "Call":
        return cls(
            target=target,
            value=response.get("value"),
            error=response.get("error"),
            missing=bool(response.get("missing")),
            forbidden=tuple(response.get("forbidden") or ()),
            seconds=float(response.get("seconds") or 0.0),
            type=response.get("type"),
            devices=tuple(response.get("devices") or ()),
            args=response.get("args"),
            description=description,
            requires_grad=bool(response.get("requires_grad")),
        )


class Student(Protocol):
    """The student's notebook as a check sees it (`st`): `call` a function or model it defines with the check's
    arguments, or read a `value` it computed; each gives a `Call` (its value, or what went wrong: missing, raised,
    timed out, used a forbidden operator). `device` is where the grader wants tensors (`"cpu"` or `"cuda"`)."""

    device: str

    def value(self, name: str) -> Call: ...

    def call(self, target: str, *args: Any, forbid: Forbid | None = None, no_grad: bool = False,
             seed: int | None = None, return_args: bool = False, description: str = "",
             eval_mode: bool = False, on_model_device: bool = False,
             then: list[tuple[str | None, tuple, dict]] | None = None, **kwargs: Any) -> Call:
        """Call a student function (or model) with grader-made arguments.

        `then`: calls made on the returned object, in order, as (method name or None for the
        object itself, args, kwargs); the Call's value is then the list of their results
        (e.g. `st.call("EarlyStopping", 2, then=[("step", (0.5,), {})])`).
        `no_grad`, `eval_mode`: run under torch.no_grad() / after model.eval();
        `on_model_device`: move tensor arguments to the target model's device (trained models);
        `return_args`: also bring back the arguments after the call (e.g. a model's state);
        `seed`: torch.manual_seed before the call, so reference and student draw the same numbers.
        """


def call_request(target, args, kwargs, forbid, no_grad, seed, return_args, eval_mode, device,
                 then=None) -> dict[str, Any]:
    return {
        "op": "call", "target": target, "args": args, "kwargs": kwargs,
        "forbid": forbid.as_request() if forbid else {}, "no_grad": no_grad, "seed": seed,
        "device": device, "return_args": return_args, "eval_mode": eval_mode,
        "then": [(m, tuple(a), dict(k)) for m, a, k in then] if then else None,
    }


@dataclass
class KernelStudent:
    """The student's namespace inside a sandboxed kernel, reached through the session's probe channel."""

    session: Any  # session.Session
    timeout: float
    device: str = "cpu"
    watch: bool = False  # the notebook's source reaches into the interpreter: guarded calls are watched closely
    malformed: list[str] = field(default_factory=list)  # answers that were not what the probe sends

    def value(self, name: str) -> Call:
        return self._ask({"op": "value", "target": name}, name, "", guarded=False)

    def call(self, target, *args, forbid=None, no_grad=False, seed=None, return_args=False,
             description="", eval_mode=False, on_model_device=False, then=None, **kwargs):
        request = call_request(target, args, kwargs, forbid, no_grad, seed, return_args, eval_mode,
                               "model" if on_model_device else self.device, then)
        if forbid and self.watch:
            request["forbid"]["watch"] = True
        return self._ask(request, target, description, guarded=bool(forbid))

    def _ask(self, request: dict[str, Any], target: str, description: str, guarded: bool) -> Call:
        answer = self.session.probe(request, guarded, self.timeout)
        if answer.status == "error":  # the probe server's own failure, before or around the student's code
            why = "the probe gave no answer"
            try:
                why = codec.decode_response(answer.data)["error"] or why
            except ProbeError:
                pass
            raise ProbeFault(f"asking the kernel for {target} failed: {why}")
        if answer.status == "broken":  # the kernel could not be restored after a stop: nothing left to ask
            return Call(target, error=f"not checked: {answer.message}", description=description)
        if answer.status != "ok":
            return Call(target, error=answer.message or "the kernel gave no answer", description=description)
        try:
            response = codec.decode_response(answer.data)
        except ProbeError as exc:
            self.malformed.append(f"{target}: {exc.message}")
            return Call(target, error=exc.message, description=description)
        call = Call.from_response(target, response, description)
        return replace(call, forbidden=tuple(answer.guard)) if answer.guard else call


@dataclass
class LocalStudent:
    """The student's own namespace (a notebook's globals), for self-checks."""

    namespace: Mapping[str, Any]
    device: str = "cpu"

    def value(self, name: str) -> Call:
        return self._local({"op": "value", "target": name}, name, "")

    def call(self, target, *args, forbid=None, no_grad=False, seed=None, return_args=False,
             description="", eval_mode=False, on_model_device=False, then=None, **kwargs):
        request = call_request(target, copy.deepcopy(args), copy.deepcopy(kwargs), forbid, no_grad, seed,
                               return_args, eval_mode, "model" if on_model_device else self.device,
                               copy.deepcopy(then))
        return self._local(request, target, description)

    def _local(self, request: dict[str, Any], target: str, description: str) -> Call:
        sink = kernel_side.ListSink()
        plain = kernel_side.answer(request, self.namespace, sink, _origin())
        devices: list[str] = []
        response = {k: plain[k] for k in ("missing", "error", "type", "seconds", "requires_grad")}
        response["value"] = codec.from_plain(plain["value"], devices)
        response["devices"] = devices
        if "args" in plain:
            response["args"] = codec.from_plain(plain["args"])
        call = Call.from_response(target, response, description)
        used = tuple(d if k != "T" else f"guard tampered: {d}" for k, d in sink.events if k in ("O", "P", "T"))
        return replace(call, forbidden=used) if used else call


@functools.lru_cache(maxsize=1)
def _origin() -> Any:
    return kernel_side.default_origin()
