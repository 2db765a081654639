"""Sandbox round 3: no writable place is unbounded host disk; output floods do not grow the grader; a memory
stop is reported as such; student figures never show a hidden input."""

from __future__ import annotations

import nbformat
import pytest

from autograder.config import Limits
from autograder.kernel.execute import execute_notebook
from autograder.kernel.isolation import bwrap_unavailable, size_supported
from autograder.kernel.probe import KernelStudent
from autograder.kernel.session import Session
from autograder.kernel.spec import KernelSpec

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox here: {bwrap_unavailable()}")]


def run(tmp_path, *sources, limits=Limits(cell_timeout=30, notebook_timeout=60, disk_mb=16), names=("a",)):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "sub.ipynb"
    nbformat.write(nb, path)
    spec = KernelSpec(limits=limits, threads=1, device="cpu", seed=3)
    with Session(path, None, spec) as session:
        report = execute_notebook(session, nb)
        st = KernelStudent(session, 20)
        values = {n: st.value(n).value for n in names}
    return report, values, session


WRITE = """
import os
def fill(folder, mib=64):
    written = 0
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "fill.bin"), "wb") as f:
            for _ in range(mib):
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1
    except OSError as exc:
        return written, type(exc).__name__
    return written, None
a = {place: fill(place) for place in ("/run/torchgrade", "/dev/shm", "/dev", "/tmp", ".")}
"""


@pytest.mark.skipif(not size_supported(), reason="this bubblewrap cannot size its file systems")
def test_no_writable_place_is_unbounded(tmp_path):
    report, values, _ = run(tmp_path, WRITE)
    assert report.status == "ok", report.message
    written = values["a"]
    for place, (mib, error) in written.items():
        assert error is not None and mib <= 16, (place, mib, error)  # each write stopped at its limit (16 MiB)
    assert written["/run/torchgrade"][0] <= 1 and written["/dev"][0] == 0
