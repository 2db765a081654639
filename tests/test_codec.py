"""The probe codec: what crosses from the kernel is decoded safely and strictly, and round-trips faithfully."""

from __future__ import annotations

import io
import pickle
import zipfile

import pandas as pd
import pytest
import torch

from autograder.errors import ProbeError
from autograder.kernel import codec, kernel_side


class Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def encoded(plain) -> bytes:
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    return buffer.getvalue()


def answer_with(value) -> bytes:
    return encoded(kernel_side.response(value=kernel_side.to_plain(value), type="x"))


def test_a_response_carrying_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProbeError):
        codec.decode_response(pickle.dumps({"value": Evil()}))
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


def test_compressed_containers_are_refused():
    data = answer_with(torch.zeros(1000))
    squeezed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(ProbeError, match="compressed"):
        codec.decode_response(squeezed.getvalue())


def test_tensor_subclasses_cross_as_plain_tensors():
    class Sneaky(torch.Tensor):
        pass

    value = torch.ones(3).as_subclass(Sneaky)
    got = codec.decode_response(answer_with(value))["value"]
    assert type(got) is torch.Tensor and torch.equal(got, torch.ones(3))
