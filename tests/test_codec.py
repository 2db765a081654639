"""The probe codec: what crosses from the kernel is decoded safely, and round-trips faithfully."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
import torch

from autograder import codec, kernel_side
from autograder.errors import ProbeError


class Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_response_carrying_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "response.pt"
    with open(path, "wb") as f:
        pickle.dump({"value": Evil()}, f)
    with pytest.raises(ProbeError):
        codec.read_response(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("value", [
    3, 2.5, "text", None, True, (1, 2), [1, (2, 3)], {"a": 1},
    torch.arange(6.0).reshape(2, 3), torch.Size([2, 3]), torch.float64,
])
def test_plain_values_round_trip(tmp_path, value):
    path = tmp_path / "r.pt"
    torch.save({"value": kernel_side.to_plain(value)}, path)
    got = codec.read_response(path)["value"]
    if isinstance(value, torch.Tensor):
        assert torch.equal(got, value)
    else:
        assert got == value and type(got) is type(value)


def test_modules_frames_and_unknown_objects_cross_as_data(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).eval()
    model.register_forward_hook(lambda *a: None)
    frame = pd.DataFrame({"layer": ["0"], "params": [9]})
    path = tmp_path / "r.pt"
    torch.save({"value": kernel_side.to_plain([model, frame, object()])}, path)
    snap, got_frame, opaque = codec.read_response(path)["value"]
    assert isinstance(snap, codec.ModuleSnapshot) and snap.training is False
    assert set(snap.state) == set(model.state_dict()) and snap.hooks["forward"] == 1
    assert got_frame.equals(frame)
    assert isinstance(opaque, codec.Opaque) and opaque.type == "object"
