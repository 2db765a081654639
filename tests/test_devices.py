"""Devices: the CPU path always; the CUDA path where a GPU exists (marked `cuda`)."""

from __future__ import annotations

import pytest
import torch

from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.kernel.machine import kernel_threads, resolved_device
from autograder.errors import ConfigError
from autograder.kernel.probe import LocalStudent

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_picks_what_is_there():
    assert resolved_device(GradeSettings(device="auto")) == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no GPU exists")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolved_device(GradeSettings(device="cuda"))


def test_threads_are_shared_between_jobs():
    import os

    cores = os.cpu_count() or 1
    assert kernel_threads(GradeSettings(jobs=1)) == cores
    assert kernel_threads(GradeSettings(jobs=cores * 2)) == 1


def test_inputs_follow_the_grading_device_and_results_report_theirs():
    st = LocalStudent({"f": lambda x: x.to("cpu") * 2}, device="cpu")
    call = st.call("f", torch.ones(2))
    assert call.devices == ("cpu",)


@pytest.mark.cuda
@needs_cuda
def test_inputs_are_moved_to_cuda_and_results_come_back_to_the_grader():
    st = LocalStudent({"f": lambda x: x * 2, "stay": lambda x: x.cpu()}, device="cuda")
    assert st.call("f", torch.ones(2)).devices == ("cuda",)
    assert st.call("stay", torch.ones(2)).devices == ("cpu",)


@pytest.mark.cuda
@pytest.mark.slow
@needs_cuda
def test_convolution_solution_scores_full_marks_on_cuda(convolution_build, tmp_path):
    bundle = load_assignment(convolution_build.autograder_dir)
    report = grade_into(bundle, [convolution_build.autograder_dir / "solution.ipynb"], tmp_path,
                         GradeSettings(device="cuda"))
    result = report.graded[0]
    assert result.device == "cuda" and result.total == result.max_total, result.message


def test_kernels_see_only_their_gpu_on_multi_gpu_runners(tmp_path):
    from autograder.config import Limits
    from autograder.kernel.spec import KernelSpec, kernel_env

    spec = KernelSpec(Limits(), threads=1, device="cuda", seed=0, gpu=3)
    assert kernel_env(spec, "/home/student", "/tmp")["CUDA_VISIBLE_DEVICES"] == "3"
    cpu = KernelSpec(Limits(), threads=1, device="cpu", seed=0, gpu=None)
    assert kernel_env(cpu, "/home/student", "/tmp")["CUDA_VISIBLE_DEVICES"] == ""
