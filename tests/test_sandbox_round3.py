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


FLOOD = """
ip = get_ipython()
kernel = ip.kernel
parent = kernel.get_parent()
send = lambda kind, content: kernel.session.send(kernel.iopub_socket, kind, content, parent=parent)
big = "x" * (1 << 20)
for i in range(60):
    send("error", {"ename": "Flood", "evalue": big, "traceback": [big]})
    send("update_display_data", {"data": {"text/plain": big}, "metadata": {}, "transient": {"display_id": "d"}})
    send("comm_msg", {"comm_id": "c", "data": {"blob": big}})
send("stream", {"name": "stdout", "text": "x" * (40 << 20)})  # one message over the limit of one message
a = 1
"""


def test_an_output_flood_of_any_message_type_does_not_grow_the_grader(tmp_path):
    import psutil

    report, values, session = run(tmp_path, "x = 0", FLOOD, "b = 2", names=("a", "b"))
    kept = sum(len(str(out)) for cell in session.nb.cells for out in cell.get("outputs", []))
    assert kept < 2 * (256 << 10), kept  # about the cell's cap, not 180 MiB of it
    assert values["a"] == 1 or report.status == "timeout"  # the flood cell ran (or was stopped), the kernel lives
    assert values["b"] == 2 or report.status == "timeout"
    assert psutil.Process().memory_info().rss < 2 << 30


@pytest.mark.parametrize("source", [
    "with open('/dev/shm/fill', 'wb') as f:\n    for _ in range(400):\n        f.write(b'x' * (1 << 20))\n        f.flush()",
    "import socket, resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
    "pairs = []\nfor i in range(1800):\n    s1, s2 = socket.socketpair()\n    s1.setblocking(False)\n"
    "    s1.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)\n    pairs.append((s1, s2))\n"
    "    try:\n        while True:\n            s1.send(b'x' * 65536)\n    except OSError:\n        pass",
], ids=["shm", "socket-buffers"])
def test_memory_that_belongs_to_no_process_still_stops_the_notebook_as_memory(tmp_path, source):
    from autograder.kernel.limits import cgroups_unavailable

    if cgroups_unavailable() is not None:
        pytest.skip(f"no memory cgroup: {cgroups_unavailable()}")
    report, _, _ = run(tmp_path, source, "b = 1", limits=Limits(cell_timeout=60, notebook_timeout=90, memory_mb=200,
                                                                 disk_mb=1024))
    assert report.status == "memory", report.message
    assert "memory limit (200 MiB)" in report.message
