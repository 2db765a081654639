"""The probe codec: what crosses from the kernel is decoded safely and strictly, and round-trips faithfully."""

from __future__ import annotations

import io
import pickle
import struct

import pandas as pd
import pytest
import torch

from autograder.errors import ProbeError
from autograder.kernel import codec, kernel_side


class Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def encoded(plain) -> bytes:
    return kernel_side.wire_encode(plain)


def framed(pickled: bytes, tensor_bytes: bytes = b"") -> bytes:
    """A hand-made probe message: any pickle, with any tensor bytes after it."""
    return b"TGW1" + struct.pack("!I", len(pickled)) + pickled + tensor_bytes


class TensorRef:
    """Pickles as a persistent id of the caller's choosing: a forged tensor reference."""

    def __init__(self, pid):
        self.pid = pid


class Forger(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, TensorRef) else None


def forged(value) -> bytes:
    buffer = io.BytesIO()
    Forger(buffer, protocol=5).dump(value)
    return buffer.getvalue()


def response_of(value) -> dict:
    return {"__tg__": "response", "missing": False, "error": None, "type": None, "seconds": 0.0, "value": value}


def answer_with(value) -> bytes:
    return encoded(kernel_side.response(value=kernel_side.to_plain(value), type="x"))


def test_a_response_carrying_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProbeError):
        codec.decode_response(pickle.dumps({"value": Evil()}))
    with pytest.raises(ProbeError, match="global"):  # framed as a probe message: no global is ever resolved
        codec.decode_response(framed(pickle.dumps(response_of(Evil()))))
    buffer = io.BytesIO()
    torch.save({"value": Evil()}, buffer)  # a torch.save'd file whose pickle holds code
    with pytest.raises(ProbeError):
        codec.decode_response(buffer.getvalue())
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("value", [
    3, 2.5, "text", None, True, (1, 2), [1, (2, 3)], {"a": 1},
    torch.arange(6.0).reshape(2, 3), torch.Size([2, 3]), torch.float64,
])
def test_plain_values_round_trip(value):
    got = codec.decode_response(answer_with(value))["value"]
    if isinstance(value, torch.Tensor):
        assert torch.equal(got, value)
    else:
        assert got == value and type(got) is type(value)


def test_modules_frames_and_unknown_objects_cross_as_data():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).eval()
    model.register_forward_hook(lambda *a: None)
    frame = pd.DataFrame({"layer": ["0"], "params": [9]})
    snap, got_frame, opaque = codec.decode_response(answer_with([model, frame, object()]))["value"]
    assert isinstance(snap, codec.ModuleSnapshot) and snap.training is False
    assert set(snap.state) == set(model.state_dict()) and snap.hooks["forward"] == 1
    assert got_frame.equals(frame)
    assert isinstance(opaque, codec.Opaque) and opaque.type == "object"


def test_a_student_dict_with_the_codecs_own_keys_stays_a_dict():
    spoof = {"__tg__": "tensor", "data": torch.ones(2), "device": "cpu", "requires_grad": False,
             "__tensor__": torch.ones(2), "__module__": "x"}
    got = codec.decode_response(answer_with(spoof))["value"]
    assert isinstance(got, dict) and set(got) == set(spoof)


@pytest.mark.parametrize("raw", [
    {"__tg__": "response", "missing": False, "error": None, "type": None, "seconds": 0.0,
     "value": {"__tg__": "module", "type": "x"}},  # a module without its fields
    {"__tg__": "response", "missing": False, "error": None, "type": None, "seconds": 0.0,
     "value": {"a": 1}},  # an untagged mapping
    {"__tg__": "response", "missing": False, "error": None, "type": None, "seconds": 0.0,
     "value": torch.ones(2)},  # a bare tensor
    {"__tg__": "response", "missing": "yes", "error": None, "type": None, "seconds": 0.0, "value": 1},
    {"value": 1},  # not a response at all
    [1, 2, 3],
])
def test_malformed_answers_are_refused(raw):
    with pytest.raises(ProbeError):
        codec.decode_response(encoded(raw))


def test_deep_and_huge_answers_are_refused():
    deep: list = []
    for _ in range(50):
        deep = [deep]
    with pytest.raises(ProbeError, match="deeply"):
        codec.decode_response(encoded(kernel_side.response(value=deep)))
    shared = [1] * 10
    for _ in range(12):  # 10 ** 12 leaves through shared sub-lists: small to send, endless to walk
        shared = [shared] * 10
    with pytest.raises(ProbeError):
        codec.decode_response(encoded(kernel_side.response(value=shared)))


@pytest.mark.parametrize("pid, tensor_bytes, why", [
    (("torch.float32", (4,), 0, 16, False), bytes(8), "does not match"),  # bytes past the end
    (("torch.float32", (4,), 64, 16, False), bytes(64), "does not match"),  # an offset past the end
    (("torch.float32", (4,), -8, 16, False), bytes(64), "does not match"),
    (("torch.float32", (2, 2), 0, 8, False), bytes(64), "does not match"),  # a size that is not its shape's
    (("torch.float32", (2 ** 40, 2 ** 40), 0, 16, False), bytes(64), "does not match"),
    (("torch.float32", (-4,), 0, 16, False), bytes(64), "malformed"),
    (("torch.float32", [4], 0, 16, False), bytes(64), "malformed"),  # a list for a shape
    (("torch.qint8", (4,), 0, 4, False), bytes(64), "malformed"),  # no such wire dtype
    (("torch.float32", (4,), 0, 16), bytes(64), "malformed"),
    ("a string", bytes(64), "malformed"),
])
def test_forged_tensor_references_are_refused(pid, tensor_bytes, why):
    with pytest.raises(ProbeError, match=why):
        codec.decode_response(framed(forged(response_of({"__tg__": "tensor", "data": TensorRef(pid),
                                                          "device": "cpu", "requires_grad": False})), tensor_bytes))


def test_cut_and_foreign_messages_are_refused():
    data = answer_with(torch.arange(6.0))
    for bad in (data[:6], data[:12], b"PK\x03\x04" + data[4:], b""):
        with pytest.raises(ProbeError):
            codec.decode_response(bad)
    with pytest.raises(ProbeError, match="bare bytearray"):  # built without a global, refused by the decoder
        codec.decode_response(framed(pickle.dumps(response_of(bytearray(b"x")), protocol=5)))


@pytest.mark.parametrize("tensor", [
    torch.arange(12.0).reshape(3, 4).t(),  # not contiguous
    torch.ones(2, 3, dtype=torch.bfloat16), torch.tensor([True, False]), torch.randn(3, dtype=torch.complex64),
    torch.tensor(7, dtype=torch.int64), torch.zeros(0, 5), torch.arange(5, dtype=torch.uint8)[1:],
    torch.randn(4, dtype=torch.float64), torch.ones(3, dtype=torch.float16), torch.tensor([-3], dtype=torch.int8),
])
def test_tensors_of_every_wire_dtype_and_layout_round_trip(tensor):
    got = codec.decode_response(answer_with(tensor))["value"]
    assert got.dtype == tensor.dtype and got.shape == tensor.shape and torch.equal(got, tensor)


def test_a_request_keeps_parameters_gradients_and_the_identity_of_repeated_tensors():
    x = torch.randn(2, 3)
    weight = torch.nn.Parameter(torch.randn(3, 3))
    request = {"args": (x, x, weight, weight), "kwargs": {"grad": torch.ones(2, requires_grad=True)}, "n": 3}
    got = kernel_side.wire_decode(kernel_side.wire_encode(request), trusted=True)
    a, b, w1, w2 = got["args"]
    assert a is b and torch.equal(a, x) and w1 is w2 and isinstance(w1, torch.nn.Parameter)
    assert torch.equal(w1, weight) and w1.requires_grad and got["kwargs"]["grad"].requires_grad and got["n"] == 3
    a.add_(1)  # what the kernel receives is its own, writable memory
    assert not torch.equal(a, x)


def test_tensor_subclasses_cross_as_plain_tensors():
    class Sneaky(torch.Tensor):
        pass

    value = torch.ones(3).as_subclass(Sneaky)
    got = codec.decode_response(answer_with(value))["value"]
    assert type(got) is torch.Tensor and torch.equal(got, torch.ones(3))
