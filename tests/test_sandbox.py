"""The sandbox and execution loop on small notebooks: isolation, seeds, limits, output cap."""

from __future__ import annotations

import nbformat
import pytest

from autograder.config import Limits
from autograder.execute import execute_notebook
from autograder.probe import KernelStudent
from autograder.sandbox import KernelSpec, open_sandbox

pytestmark = pytest.mark.slow


def run(tmp_path, *sources, limits=Limits(cell_timeout=20, notebook_timeout=40), student_files=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "sub.ipynb"
    nbformat.write(nb, path)
    spec = KernelSpec(limits=limits, threads=1, device="cpu", seed=7)
    with open_sandbox(path, student_files, spec) as box:
        report = execute_notebook(box, nb)
        st = KernelStudent(box.kernel.run_silently, box.private, 20)
        values = {name: st.value(name).value for name in ("a", "b", "c", "d")}
    return report, nb, values


def test_seeds_threads_env_and_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHGRADE_TEST_SECRET", "s3cret")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "data.txt").write_text("visible")
    report, _, values = run(
        tmp_path,
        "import os, torch, random\na = [torch.rand(3).tolist(), random.random()]",
        "b = torch.get_num_threads()",
        "c = os.environ.get('TORCHGRADE_TEST_SECRET')",
        "d = sorted(os.listdir('.'))",
        student_files=tmp_path / "files",
    )
    assert report.status == "ok"
    _, _, again = run(tmp_path, "import torch, random\na = [torch.rand(3).tolist(), random.random()]")
    assert values["a"] == again["a"]  # seeded: the same numbers on every run
    assert values["b"] == 1
    assert values["c"] is None  # the grader's environment does not leak into the kernel
    assert values["d"] == ["data.txt", "sub.ipynb"]


def test_errors_do_not_stop_later_cells(tmp_path):
    report, _, values = run(tmp_path, "a = 1", "raise ValueError('boom')", "b = 2")
    assert report.status == "ok"
    assert [c.status for c in report.cells] == ["ok", "error", "ok"]
    assert "ValueError: boom" in report.cells[1].error
    assert values["a"] == 1 and values["b"] == 2


def test_output_is_capped_per_cell(tmp_path):
    limits = Limits(cell_timeout=30, notebook_timeout=60, output_kb=16)
    report, nb, _ = run(tmp_path, "for i in range(100_000):\n    print('x' * 50)", limits=limits)
    kept = sum(len(str(o)) for o in nb.cells[0].outputs)
    assert kept < 16 * 1024 + 2_000
    assert "output of this cell cut" in str(nb.cells[0].outputs[-1])


def test_file_size_and_core_limits_are_set_in_the_kernel(tmp_path):
    from autograder.sandbox import FILE_SIZE_LIMIT

    report, _, values = run(tmp_path, "import resource\na = resource.getrlimit(resource.RLIMIT_FSIZE)[0]",
                            "b = resource.getrlimit(resource.RLIMIT_CORE)[0]")
    assert values["a"] == FILE_SIZE_LIMIT
    assert values["b"] == 0


def test_the_kernel_has_no_network_where_the_host_allows_it(tmp_path):
    from autograder.sandbox import no_network_prefix

    probe = ("import socket\n"
             "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=3); a = 'connected'\n"
             "except OSError as e:\n    a = str(e)")
    report, _, values = run(tmp_path, probe)
    if no_network_prefix():
        assert "unreachable" in values["a"]
    else:
        pytest.skip("this host allows no network namespaces: kernels keep the host's network")
