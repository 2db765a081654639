"""The probe codec: what crosses from the kernel is decoded safely and strictly, and round-trips faithfully."""

from __future__ import annotations

import io
import json
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
    return kernel_side.answer_encode(plain)


def framed(structure, tensor_bytes: bytes = b"") -> bytes:
    """A hand-made answer: any JSON (text or an object), with any tensor bytes after it."""
    text = structure if isinstance(structure, (str, bytes)) else json.dumps(structure)
    head = text.encode() if isinstance(text, str) else text
    return b"TGA1" + struct.pack("!I", len(head)) + head + tensor_bytes


def record(**fields) -> dict:
    return {"__wire__": "dict", "items": [[k, v] for k, v in fields.items()]}


def tensor_record(dtype="torch.float32", shape=(4,), offset=0, size=16) -> dict:
    return {"__wire__": "tensor", "dtype": dtype, "shape": list(shape), "offset": offset, "size": size}


def response_of(value, **fields) -> dict:
    return record(**{"__tg__": "response", "missing": False, "error": None, "type": None, "seconds": 0.0,
                     "value": value, **fields})


def answer_with(value) -> bytes:
    return encoded(kernel_side.response(value=kernel_side.to_plain(value), type="x"))


def test_a_response_carrying_code_is_refused(tmp_path, monkeypatch):
    """No pickle is read from a kernel: not a plain one, not one framed as an answer, not a torch.save'd one."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProbeError):
        codec.decode_response(pickle.dumps({"value": Evil()}))
    with pytest.raises(ProbeError):
        codec.decode_response(framed(pickle.dumps({"value": Evil()})))
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
    {"__tg__": "response", "missing": False, "error": None, "type": None, "seconds": 0.0, "value": 1,
     "requires_grad": 1},
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
    # JSON has no references, so nothing small to send is endless to walk; what is large is counted before it is
    # read (a list of 8 MiB of empty lists would hold 340 MB), and bounded by the decoder's node budget after
    def answer_of(values: str) -> bytes:
        return framed('{"__wire__": "dict", "items": [["__tg__", "response"], ["missing", false], ["error", null], '
                      '["type", null], ["seconds", 0.0], ["value", [' + values + ']]]}')

    with pytest.raises(ProbeError, match="over 1000000 values"):
        codec.decode_response(answer_of("[]," * 2_000_000 + "[]"))
    assert len(codec.decode_response(answer_of("0," * 900_000 + "0"))["value"]) == 900_001


@pytest.mark.parametrize("ref, tensor_bytes, why", [
    (tensor_record(size=16), bytes(8), "larger than the bytes|does not match"),  # bytes past the end
    (tensor_record(offset=64), bytes(64), "does not match"),  # an offset past the end
    (tensor_record(offset=-64), bytes(128), "does not match"),
    (tensor_record(offset=8), bytes(128), "does not match"),  # not aligned
    (tensor_record(shape=(2, 2), size=8), bytes(64), "does not match"),  # a size that is not its shape's
    (tensor_record(shape=(2 ** 30, 2 ** 30)), bytes(64), "larger than the bytes"),
    (tensor_record(shape=(10 ** 30,)), bytes(64), "malformed"),
    (tensor_record(shape=(-4,)), bytes(64), "malformed"),
    (tensor_record(shape=[4.0]), bytes(64), "malformed"),
    (tensor_record(dtype="torch.qint8"), bytes(64), "malformed"),  # no such wire dtype
    ({**tensor_record(), "requires_grad": True}, bytes(64), "no wire record"),  # a key no tensor record has
    ({"__wire__": "tensor"}, bytes(64), "no wire record"),
    ({"dtype": "torch.float32"}, bytes(64), "no wire record"),  # an object that is no record at all
])
def test_forged_tensor_records_are_refused(ref, tensor_bytes, why):
    answer = framed(response_of(record(**{"__tg__": "tensor", "data": ref, "device": "cpu", "requires_grad": False})),
                    tensor_bytes)
    with pytest.raises(ProbeError, match=why):
        codec.decode_response(answer)


def test_two_records_over_the_same_bytes_are_refused_and_each_tensor_owns_its_bytes():
    data = response_of([tensor_record(), tensor_record()])  # the second reuses the first one's bytes
    with pytest.raises(ProbeError, match="does not match"):
        codec.decode_response(framed(data, bytes(64)))
    first, second = codec.decode_response(answer_with([torch.zeros(4), torch.zeros(4)]))["value"]
    first.fill_(1)
    assert second.sum() == 0


def test_cut_and_foreign_messages_are_refused():
    data = answer_with(torch.arange(6.0))
    for bad in (data[:6], data[:12], b"PK\x03\x04" + data[4:], b"", kernel_side.wire_encode({"value": 1})):
        with pytest.raises(ProbeError):
            codec.decode_response(bad)
    with pytest.raises(ProbeError, match="bare NaN"):
        codec.decode_response(framed('{"__wire__": "dict", "items": [["x", NaN]]}'))


@pytest.mark.parametrize("payload, why", [
    # a structure over its cap, whatever the tensor bytes allow
    (lambda: b"TGA1" + struct.pack("!I", 9 * 2**20) + bytes(9 * 2**20), "structure"),
    (lambda: framed("[" * 100_000 + "]" * 100_000), "RecursionError"),  # nesting
    (lambda: framed(json.dumps(response_of(0)).replace('["value", 0]', '["value", ' + "9" * 5000 + "]")),
     "ValueError"),  # an int over Python's digit limit
    (lambda: framed(response_of(1, seconds=1e400)), "Infinity|seconds"),
    (lambda: framed(response_of(1, seconds=-1.0)), "seconds"),
    (lambda: framed(response_of(1, type="x" * 2000)), "over 1000 characters"),
    (lambda: framed(response_of("x" * 200_000)), "string over"),
    (lambda: framed(response_of(record(**{"__tg__": "size", "dims": [2 ** 64]}))), "size"),
    (lambda: framed(response_of(record(**{"__tg__": "size", "dims": [-5]}))), "size"),
    (lambda: framed(response_of(record(**{"__tg__": "opaque", "type": "x", "repr": "y" * 10_000}))), "opaque"),
    (lambda: framed(response_of(record(**{"__tg__": "ndarray", "data": tensor_record("torch.bfloat16", (2,), 0, 4)})),
                    bytes(64)), "array's dtype"),
    (lambda: framed(response_of(record(**{"__tg__": "tensor", "data": tensor_record(), "device": "cuda:7; rm",
                                          "requires_grad": False})), bytes(64)), "device"),
])
def test_answers_out_of_proportion_or_out_of_range_are_refused(payload, why):
    """What a review found the first wire reader let through: each is a `ProbeError` naming the problem, in
    bounded time and memory."""
    with pytest.raises(ProbeError, match=why):
        codec.decode_response(payload())


def test_a_dtype_is_looked_up_by_name_and_imports_nothing():
    import sys

    sys.modules.pop("torch._dynamo.config", None)  # what `getattr(torch, "_dynamo")` would import, had it not been
    got = codec.decode_response(framed(response_of(record(**{"__tg__": "dtype", "name": "_dynamo"}))))["value"]
    assert isinstance(got, codec.Opaque)
    assert codec.decode_response(answer_with(torch.float64))["value"] is torch.float64


def test_colliding_integer_keys_cannot_reach_a_dict():
    """Every JSON object of an answer is a wire record; a dict's keys are strings, hashed with a random seed."""
    with pytest.raises(ProbeError, match="malformed dict|no wire record"):
        codec.decode_response(framed(response_of({"__wire__": "dict", "items": [[k * (2**61 - 1), 0] for k in range(50)]})))


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
    got = kernel_side.wire_decode(kernel_side.wire_encode(request))
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


def test_tensors_of_the_newer_dtypes_cross_and_quantized_ones_cross_as_what_they_are():
    for dtype in (torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn):
        tensor = torch.arange(4, dtype=torch.float32).to(dtype)
        got = codec.decode_response(answer_with(tensor))["value"]
        assert got.dtype == dtype and torch.equal(got.float(), tensor.float())
    quantized = torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8)
    got = codec.decode_response(answer_with(quantized))["value"]
    assert isinstance(got, codec.Opaque) and got.type == "torch.Tensor" and "qint8" in got.repr
