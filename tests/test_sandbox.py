"""The sandbox and the warm kernels, on small notebooks: what a kernel can see, do, and leave behind.

Each test is an attack or a guarantee, run in a real sandboxed kernel: the notebook records what
it managed to do in variables, and the test reads them back through the probe.
"""

from __future__ import annotations

import os
import re
import sys
import time

import nbformat
import psutil
import pytest

import hostile
from autograder.config import Limits
from autograder.extensions import REGISTRIES
from autograder.kernel import boot
from autograder.kernel.execute import execute_notebook
from autograder.kernel.isolation import Bubblewrap, bwrap_unavailable, library_dirs
from autograder.kernel.probe import KernelStudent
from autograder.kernel.session import Session
from autograder.kernel.spec import FILE_SIZE_LIMIT, KernelSpec
from autograder.kernel.limits import cgroups_unavailable

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox here: {bwrap_unavailable()}")]

LIMITS = Limits(cell_timeout=20, notebook_timeout=40, probe_timeout=10)


def notebook(tmp_path, *sources, name="sub.ipynb"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path, nb


def run(tmp_path, *sources, names=("a", "b", "c", "d"), limits=LIMITS, student_files=None, isolation="bwrap",
        keep=None):
    """Execute the cells in a fresh sandbox; returns the report, the values of `names` and the session."""
    path, nb = notebook(tmp_path, *sources)
    spec = KernelSpec(limits=limits, threads=1, device="cpu", seed=7, isolation=isolation)
    with Session(path, student_files, spec) as session:
        report = execute_notebook(session, nb)
        st = KernelStudent(session, 20)
        values = {name: st.value(name).value for name in names}
        if keep is not None:
            keep(session)
    return report, values, session


def test_seeds_threads_env_and_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHGRADE_TEST_SECRET", "s3cret")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "data.txt").write_text("visible")
    report, values, _ = run(
        tmp_path,
        "import os, torch, random\na = [torch.rand(3).tolist(), random.random()]",
        "b = torch.get_num_threads()",
        "c = os.environ.get('TORCHGRADE_TEST_SECRET')",
        "d = sorted(os.listdir('.'))",
        student_files=tmp_path / "files",
    )
    assert report.status == "ok"
    _, again, _ = run(tmp_path, "import torch, random\na = [torch.rand(3).tolist(), random.random()]")
    assert values["a"] == again["a"]  # seeded: the same numbers in every kernel the zygote forks
    assert values["b"] == 1
    assert values["c"] is None  # the grader's environment does not leak into the kernel
    assert values["d"] == ["data.txt", "sub.ipynb"]


def test_errors_do_not_stop_later_cells(tmp_path):
    report, values, _ = run(tmp_path, "a = 1", "raise ValueError('boom')", "b = 2")
    assert report.status == "ok"
    assert [c.status for c in report.cells] == ["ok", "error", "ok"]
    assert "ValueError: boom" in report.cells[1].error
    assert values["a"] == 1 and values["b"] == 2


def test_output_is_capped_per_cell(tmp_path):
    limits = Limits(cell_timeout=30, notebook_timeout=60, output_kb=16)
    path, nb = notebook(tmp_path, "for i in range(100_000):\n    print('x' * 50)")
    with Session(path, None, KernelSpec(limits, 1, "cpu", 0)) as session:
        execute_notebook(session, nb)
    kept = sum(len(str(o)) for o in nb.cells[0].outputs)
    assert kept < 16 * 1024 + 2_000
    assert "output of this cell cut" in str(nb.cells[0].outputs[-1])


def test_limits_and_privileges_in_the_kernel(tmp_path):
    _, values, _ = run(
        tmp_path,
        "import resource\na = [resource.getrlimit(r)[0] for r in (resource.RLIMIT_FSIZE, resource.RLIMIT_CORE)]",
        "b = {l.split(':')[0]: l.split(':')[1].strip() for l in open('/proc/self/status') "
        "if l.startswith(('Cap', 'NoNewPrivs'))}",
    )
    assert values["a"] == [FILE_SIZE_LIMIT, 0]
    caps = values["b"]
    assert all(int(caps[k], 16) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")), caps
    assert caps["NoNewPrivs"] == "1"


SEES = """import os
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return type(e).__name__
a = {p: listing(p) for p in ('/', '/home', '/tmp', '/run', HOST_TMP, REPO, HOME)}
b = sorted(os.listdir('/proc'))
b = [p for p in b if p.isdigit()]
"""


def test_the_kernel_sees_only_the_system_its_environment_and_its_own_folders(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    code = (f"HOST_TMP, REPO, HOME = {str(tmp_path)!r}, {repo!r}, {os.path.expanduser('~')!r}\n" + SEES
            + f"try:\n    c = open({str(secret)!r}).read()\nexcept OSError as e:\n    c = type(e).__name__")
    report, values, _ = run(tmp_path, code)
    seen = values["a"]
    assert report.status == "ok"
    assert seen["/home"] == ["student"]
    bound = {p.parts[2] for p in library_dirs() if p.parts[:2] == ("/", "tmp") and len(p.parts) > 2}
    for name in seen["/tmp"]:  # a private /tmp: what the kernel made, and the way to an environment kept below /tmp
        assert name.startswith((".ipython", ".matplotlib", "ipykernel_")) or name in bound, seen["/tmp"]
    assert seen["/run"] == ["torchgrade", "torchgrade-files"]
    assert seen[str(tmp_path)] == "FileNotFoundError"  # nothing of the grader's temporary files
    for listing in (seen[repo], seen[os.path.expanduser("~")]):  # the repository: at most the engine package
        assert listing == "FileNotFoundError" or set(listing) <= {"autograder", ".venv", "venv", ".pyenv"}, listing
    assert values["c"] == "FileNotFoundError"
    assert len(values["b"]) <= 4  # its own PID namespace: the sandbox's init and its cat, the kernel


def test_no_network_and_no_way_back_into_the_hosts_namespaces(tmp_path):
    attack = """import ctypes, os, socket, errno, time
libc = ctypes.CDLL(None, use_errno=True)
child = os.fork()
if child == 0:
    time.sleep(5)
    os._exit(0)
def attempt(f):
    try:
        r = f()
        return 'ok' if r in (0, None) else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
a = {
    'connect': attempt(lambda: socket.create_connection(('1.1.1.1', 53), timeout=3)),
    'setns': attempt(lambda: libc.setns(os.open('/proc/1/ns/net', os.O_RDONLY), 0x40000000)),
    'unshare_user': attempt(lambda: libc.unshare(0x10000000)),
    'unshare_net': attempt(lambda: libc.unshare(0x40000000)),
    'mount': attempt(lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
    'ptrace': attempt(lambda: libc.ptrace(16, 1, None, None)),  # PTRACE_ATTACH to the sandbox's init
    'ptrace_child': attempt(lambda: libc.ptrace(16, child, None, None)),
}
"""
    report, values, session = run(tmp_path, attack)
    results = values["a"]
    assert results["connect"] in ("ENETUNREACH", "EHOSTUNREACH", "ENONET", "EADDRNOTAVAIL"), results
    refused = ["setns", "unshare_user", "unshare_net", "mount"]
    if boot.pyseccomp is not None:  # without libseccomp, ptrace among the submission's own processes is allowed
        refused += ["ptrace", "ptrace_child"]
    for name in refused:
        assert results[name] in ("EPERM", "ENOSPC", "EACCES", "EINVAL"), (name, results)
    assert {f.kind for f in session.findings} >= {"native"}  # ctypes from the notebook is reported


DETACH = """import os, subprocess, sys, time
marker = MARKER
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)', marker])
    os._exit(0)
time.sleep(0.5)
a = 'spawned'
"""


def host_processes_with(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_detached_processes_end_with_the_submission_and_are_reported(tmp_path):
    marker = f"tg-redteam-{os.getpid()}-{time.monotonic_ns()}"
    seen = []
    report, values, session = run(tmp_path, f"MARKER = {marker!r}\n" + DETACH,
                                  keep=lambda s: seen.extend(host_processes_with(marker)))
    assert values["a"] == "spawned"
    assert seen, "the detached process should run while the submission does"
    deadline = time.monotonic() + 5
    while host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host_processes_with(marker) == []
    assert "detached-processes" in {f.kind for f in session.findings}


def test_a_kernel_cannot_signal_anything_outside_its_sandbox(tmp_path):
    attack = """import os, signal
a = []
for pid in range(1, 50000):
    try:
        os.kill(pid, 0)
    except OSError:
        continue
    status = dict(line.split(':', 1) for line in open(f'/proc/{pid}/status') if ':' in line)
    if status['Tgid'].strip() == str(pid):  # a process, not one of its threads
        a.append(open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[0].decode())
b = os.getppid()
"""
    _, values, _ = run(tmp_path, attack)
    assert values["a"][:2] == ["/bin/sh", "cat"] and len(values["a"]) == 3, values["a"]  # its init and cat, the kernel
    assert values["b"] == 0  # its parent is outside the sandbox, invisible


def test_killing_every_process_in_sight_leaves_the_sandbox_standing(tmp_path):
    """The sandbox's own process cannot be signalled from inside: were it killed, the PID namespace would end, and
    the kernel with it, a moment later, after the attack's cell or during it, by chance; the grade with it."""
    attack = hostile.KILL_THE_GRADER + "import time\ntime.sleep(1)\n"  # then lives on, if it can
    report, values, session = run(tmp_path, "a = 1", attack, "b = 2")
    assert report.status == "ok", report.message
    assert (values["a"], values["b"], session.restarts) == (1, 2, 0)


def test_orphans_are_reaped_and_not_left_as_zombies(tmp_path):
    """A process orphaned in the sandbox passes to its init; one that exits is reaped there, so it does not hold a
    slot of the process limit until the sandbox closes."""
    orphans = """import os, time
for _ in range(20):
    os.system('sleep 0.05 &')  # the shell exits at once, leaving its sleep to the sandbox's init
time.sleep(1.5)
a = [p for p in os.listdir('/proc') if p.isdigit() and open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] == 'Z']
"""
    report, values, session = run(tmp_path, orphans)
    assert report.status == "ok", report.message
    assert values["a"] == []


MEMORY = """import os, time, torch
if os.fork() == 0:
    os.setsid()
    hoard = torch.ones(CHILD_MB * 2**18)  # float32: 4 bytes each
    time.sleep(30)
    os._exit(0)
time.sleep(1)
mine = torch.ones(KERNEL_MB * 2**18)
time.sleep(2)
a = 'survived'
"""


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "watchdog"])
def test_one_memory_limit_covers_every_process_of_the_submission(tmp_path, cgroups, monkeypatch):
    if cgroups and cgroups_unavailable():
        pytest.skip(f"no cgroups here: {cgroups_unavailable()}")
    monkeypatch.setitem(REGISTRIES["isolation"], "bwrap", lambda: Bubblewrap(cgroups))
    limits = Limits(cell_timeout=20, notebook_timeout=40, memory_mb=900)
    code = "CHILD_MB, KERNEL_MB = 500, 500\n" + MEMORY  # each below the limit, together above it
    report, values, session = run(tmp_path, "a = 'before'", code, limits=limits)
    assert report.status == "memory", report.message
    assert values["a"] == "before"  # the cells before the one that passed the limit, replayed


@pytest.mark.skipif(bool(cgroups_unavailable()), reason="no memory cgroup here")
def test_memory_held_just_under_the_limit_is_the_limit_reached(tmp_path):
    """At its limit a memory cgroup can crawl for as long as the machine lets it, evicting and reading back the
    kernel's own code pages, before it waits at the limit (what a memory bomb did in a busy CI run: stopped by the
    time limit instead): anonymous memory held within 56 MiB (a sixteenth) of the limit for a second is the limit
    reached."""
    limits = Limits(cell_timeout=20, notebook_timeout=40, memory_mb=900)
    hold = "import time, torch\nheld = torch.ones(828 * 2**20 // 4)\ntime.sleep(5)\nb = 'held it'"  # and ~40 MiB
    report, values, _ = run(tmp_path, "a = 'before'", hold, limits=limits)
    assert report.status == "memory", report.message
    assert values["a"] == "before" and values["b"] is None


@pytest.mark.skipif(bool(cgroups_unavailable()), reason="the process limit without cgroups is RLIMIT_NPROC")
def test_a_fork_bomb_is_contained(tmp_path):
    bomb = """import os, time
pids = []
for i in range(400):
    try:
        pids.append(os.fork())
    except OSError as e:
        a = f'stopped at {i}: {e.strerror}'
        break
    if pids[-1] == 0:
        time.sleep(30)
        os._exit(0)
else:
    a = 'not stopped'
"""
    _, values, _ = run(tmp_path, bomb, limits=Limits(cell_timeout=30, notebook_timeout=60, processes=64))
    assert values["a"].startswith("stopped at"), values["a"]


def test_fork_bomb_without_cgroups_is_contained_by_the_process_limit(tmp_path, monkeypatch):
    """RLIMIT_NPROC, counted in the sandbox's user namespace; as root (which it does not bind), the watchdog."""
    monkeypatch.setitem(REGISTRIES["isolation"], "bwrap", lambda: Bubblewrap(False))
    bomb = """import os, time
a = 'not stopped'
for i in range(400):
    try:
        pid = os.fork()
    except OSError as e:
        a = f'stopped at {i}: {e.strerror}'
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
"""
    report, values, _ = run(tmp_path, "a = 'before'", bomb,
                            limits=Limits(cell_timeout=30, notebook_timeout=60, processes=64))
    if os.geteuid() == 0:
        assert report.status == "crashed" and "process limit" in report.message, report.message
        assert values["a"] == "before"
    else:
        assert values["a"].startswith("stopped at"), values["a"]


def test_what_a_prefetch_thread_started_outlives_that_thread(tmp_path):
    """A zygote (PR_SET_PDEATHSIG) and a sandbox (bubblewrap's --die-with-parent) end with the *thread* that started
    them. Found: a zygote of the process's own, first needed on a prefetch thread, was killed as that thread ended
    with its `Prefetch`; every later kernel of the process then failed ("the kernel fork server failed (Connection
    reset by peer)"). And the prefetch thread ended while bubblewrap still waited for its sandbox's end: bubblewrap was
    killed, and the sandbox's init was left to the host's init to reap."""
    from autograder.kernel.prefetch import Prefetch

    path, nb = notebook(tmp_path, "a = 41 + 1")
    other, _ = notebook(tmp_path, "a = 0", name="other.ipynb")
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=91731, isolation="bwrap")  # a zygote of its own
    for _ in range(2):
        with Prefetch() as prefetch:
            prefetch.prepare(path, None, spec)
            with prefetch.session(path, None, spec) as session:
                execute_notebook(session, nb)
                assert KernelStudent(session, 20).value("a").value == 42
                used = session.box.process
            prefetch.prepare(other, None, spec)  # prepared, never used: ended as the prefetch closes
            unused = next(iter(prefetch.pending.values())).result().box.process
        assert used.returncode == unused.returncode == 128 + 9, (used.returncode, unused.returncode)  # not -9


def test_a_zygote_of_the_process_own_that_died_is_replaced(tmp_path):
    from autograder.kernel.zygote import zygote_for

    path, nb = notebook(tmp_path, "a = 41 + 1")
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=91732, isolation="bwrap")  # a zygote of its own
    for _ in range(2):
        with Session(path, None, spec) as session:
            execute_notebook(session, nb)
            assert KernelStudent(session, 20).value("a").value == 42
        zygote = zygote_for(spec)
        zygote.process.kill()  # killed, as the kernel's out-of-memory killer or an administrator might
        zygote.process.wait()


def test_every_kernel_starts_pristine(tmp_path):
    dirty = """import sys, os, torch, random
torch.save = None
sys.modules['planted'] = object()
torch.manual_seed(123)
random.seed(5)
open('/tmp/planted.txt', 'w').write('x')
open('planted.py', 'w').write('raise SystemExit')
a = 1
"""
    check = """import sys, os, torch, random
a = torch.save is None
b = 'planted' in sys.modules
c = [os.path.exists('/tmp/planted.txt'), os.path.exists('planted.py')]
d = torch.rand(2).tolist()
"""
    run(tmp_path, dirty)
    _, values, _ = run(tmp_path, check)
    _, fresh, _ = run(tmp_path, "import torch\nd = torch.rand(2).tolist()")
    assert values["a"] is False and values["b"] is False and values["c"] == [False, False]
    assert values["d"] == fresh["d"]


def test_the_kernel_imports_nothing_from_its_working_directory_before_the_notebook(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for name in ("ipykernel_launcher", "sitecustomize", "usercustomize", "IPython", "matplotlib_inline", "zmq",
                 "torch", "numpy", "jedi", "comm", "debugpy"):
        (files / f"{name}.py").write_text("open('/tmp/PWNED', 'w').write('x')\nraise SystemExit('planted')\n")
    report, values, _ = run(tmp_path, "import os\na = os.path.exists('/tmp/PWNED')", student_files=files)
    assert report.status == "ok" and values["a"] is False


def test_a_hanging_probe_is_interrupted_and_the_kernel_keeps_its_state(tmp_path):
    code = "def f(x):\n    while x > 1:\n        pass\n    return x\nstate = 42"
    path, nb = notebook(tmp_path, code)
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=0)
    with Session(path, None, spec) as session:
        execute_notebook(session, nb)
        st = KernelStudent(session, 2)
        start = time.monotonic()
        hung = st.call("f", 2)
        assert "did not finish within 2 s (interrupted)" in hung.error
        assert time.monotonic() - start < 6
        assert st.call("f", 1).value == 1 and st.value("state").value == 42
        assert session.restarts == 0


def test_a_probe_that_swallows_interrupts_gets_a_fresh_kernel_with_the_notebook_replayed(tmp_path):
    code = ("import time\ndef f(x):\n    while x > 1:\n        try:\n            time.sleep(0.1)\n"
            "        except KeyboardInterrupt:\n            pass\n    return x\nstate = 42")
    path, nb = notebook(tmp_path, code)
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=0)
    with Session(path, None, spec) as session:
        execute_notebook(session, nb)
        st = KernelStudent(session, 2)
        hung = st.call("f", 2)
        assert "replaced by a fresh one" in hung.error
        assert session.restarts == 1
        assert st.call("f", 1).value == 1 and st.value("state").value == 42


def test_the_budget_bounds_everything(tmp_path):
    limits = Limits(cell_timeout=20, notebook_timeout=4, probe_timeout=10, total_timeout=8)
    path, nb = notebook(tmp_path, "def f():\n    while True:\n        pass")
    with Session(path, None, KernelSpec(limits, 1, "cpu", 0)) as session:
        execute_notebook(session, nb)
        st = KernelStudent(session, 10)
        start = time.monotonic()
        calls = [st.call("f") for _ in range(4)]
        assert time.monotonic() - start < 8 + 2 * 5  # the budget, plus at most one interrupt grace
        assert "time budget" in calls[-1].error


def test_unisolated_kernels_work_for_trusted_notebooks(tmp_path):
    report, values, _ = run(tmp_path, "import os\na = os.getcwd()\nb = 1 + 1", isolation="none")
    assert report.status == "ok" and values["b"] == 2 and values["a"].endswith("files")


def test_the_zygote_is_single_threaded_and_never_touches_cuda(tmp_path):
    from autograder.kernel.zygote import zygote_for

    path, nb = notebook(tmp_path, "import torch\na = torch.cuda.is_initialized()")
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=0)
    with Session(path, None, spec) as session:
        execute_notebook(session, nb)
        assert KernelStudent(session, 10).value("a").value is False
    info = zygote_for(spec).info
    assert info["ready"] and info["threads"] == 1  # a fork copies one thread: there must be no other
    assert {"torch", "torchvision", "numpy", "IPython", "ipykernel.kernelapp"} <= set(info["preloaded"])


def test_kernels_have_no_debugger_nor_jedi_yet_a_notebook_may_import_both(tmp_path):
    """ipykernel's debugger (debugpy) and IPython's jedi completions (a tenth of a second of a zygote's start) are
    left out; the packages are not."""
    path, nb = notebook(tmp_path, "import ipykernel.debugger, IPython.core.completer, debugpy, jedi\n"
                                  "a = (ipykernel.debugger._is_debugpy_available,\n"
                                  "     getattr(get_ipython().kernel, 'debugger', None), IPython.core.completer.JEDI_INSTALLED)\n"
                                  "b = (debugpy.__name__, jedi.__name__)")
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=0)
    with Session(path, None, spec) as session:
        report = execute_notebook(session, nb)
        st = KernelStudent(session, 10)
        assert report.status == "ok" and not report.errors, report
        assert tuple(st.value("a").value) == (False, None, False) and tuple(st.value("b").value) == ("debugpy", "jedi")


def test_a_kernel_collects_garbage_and_names_its_cells_as_ipykernel_does(tmp_path):
    """The zygote imports with the collector off and freezes what it imported: its kernels collect (skipping the
    frozen imports). Cells are named `<tmp>/ipykernel_<pid>/<hash>.py` from a hash in C: one name per source, the
    source readable by linecache (for tracebacks), and an error in a cell says which line of the student's code."""
    code = ("import gc, linecache, os, weakref\n"
            "class Node:\n    pass\n"
            "def cycle():\n    n = Node(); n.me = n\n    return weakref.ref(n)\n"
            "ref = cycle(); gc.collect()\n"
            "a = (gc.isenabled(), gc.get_freeze_count() > 100000, ref() is None)\n"
            "name = cycle.__code__.co_filename\n"
            "b = (os.path.basename(os.path.dirname(name)), linecache.getline(name, 4))\n"
            "patched = 'get_code_name' in vars(get_ipython().compile)")
    path, nb = notebook(tmp_path, code)
    nb.cells.append(nbformat.v4.new_code_cell(code.replace("a = ", "a2 = ").replace("b = ", "b2 = ")))
    nb.cells.append(nbformat.v4.new_code_cell("def broken():\n    return 1 / 0\nc = broken()"))
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=0)
    with Session(path, None, spec) as session:
        report = execute_notebook(session, nb)
        st = KernelStudent(session, 10)
        assert tuple(st.value("a").value) == (True, True, True)
        folder, line = st.value("b").value
        assert folder.startswith("ipykernel_") and line == "def cycle():\n"
        assert st.value("name").value == st.value("cycle.__code__.co_filename").value
        assert st.value("patched").value is True  # named from the hash in C
        assert [c.status for c in report.cells] == ["ok", "ok", "error"]
        traceback = re.sub(r"\x1b\[[0-9;]*m", "", "".join(nb.cells[-1].outputs[-1]["traceback"]))
        assert "ZeroDivisionError" in report.cells[-1].error and "return 1 / 0" in traceback
        assert "1 / 0" in st.call("broken").error


def test_a_batch_zygote_imports_what_the_solution_imports_and_no_more(tmp_path):
    """torchvision alone costs a second to import: a zygote for convolution (torch only) is ready without it, one
    for training imports it once instead of in every kernel's first cell."""
    from autograder.kernel.zygote import PRELOAD, notebook_modules, start_zygote

    notebooks = {}
    for name, source in {"conv": "import torch\nimport torch.nn.functional as F",
                         "train": "import torch\nfrom torchvision import transforms\nimport pandas as pd\n%matplotlib inline"
                                  "\nimport matplotlib.pyplot as plt"}.items():
        (tmp_path / name).mkdir()
        notebooks[name], _ = notebook(tmp_path / name, source)
    assert notebook_modules(notebooks["conv"]) == ()
    assert notebook_modules(notebooks["train"]) == ("torchvision", "pandas", "matplotlib", "matplotlib.pyplot",
                                                     "matplotlib_inline.backend_inline")
    assert notebook_modules(tmp_path / "missing.ipynb") is None  # all of them, as a zygote for no batch
    spec = KernelSpec(limits=LIMITS, threads=1, device="cpu", seed=0)
    for name, extra in (("conv", set()), ("train", {"torchvision", "pandas", "matplotlib.pyplot",
                                                    "matplotlib_inline.backend_inline"})):
        zygote = start_zygote(spec, notebook_modules(notebooks[name]))
        try:
            zygote.connect()
            assert set(zygote.info["preloaded"]) - set(PRELOAD) == extra | ({"matplotlib"} if extra else set())
            assert not any(m.startswith("matplotlib") for m in PRELOAD)  # a kernel without it never imports it
        finally:
            zygote.close()


def test_a_closed_sandbox_is_gone_once_its_closing_finishes(tmp_path):
    """Stopping a session kills everything its sandbox runs at once; bubblewrap's exit, the cgroups and the folders
    follow on the reaper thread, and are all gone once `finish_closing` returns (every grader calls it before it
    returns, and at exit)."""
    from autograder.kernel.isolation import finish_closing

    kept = {}
    report, values, _ = run(tmp_path, "a = 1", keep=lambda session: kept.update(box=session.box))
    finish_closing()
    box = kept["box"]
    assert values["a"] == 1 and not box.root.exists() and box.process.poll() is not None
    if box.cgroups is not None:
        assert not box.cgroups.memory.exists() and not box.cgroups.pids.exists()


def test_a_kernel_starts_and_stops_without_waiting_for_anything_it_does_not_need(tmp_path, monkeypatch):
    """jupyter_client pauses a hundredth of a second after every start and shutdown of a kernel (so that its own
    tests can see the pending state), and its shutdown waits for a killed kernel to exit (a forked kernel unmapping
    its memory: some hundredths of a second). A session waits for neither: its start resolves the manager's `ready`
    as jupyter_client's does; its stop kills the kernel, which counts as ended at once, keeps what the kernel
    reported, and leaves its exit to the sandbox's closing."""
    import asyncio

    from autograder.kernel.isolation import finish_closing

    pauses, sleep = [], asyncio.sleep

    async def recorded(delay, *args, **kwargs):
        pauses.append((sys._getframe(1).f_code.co_filename, delay))  # who paused, and how long
        return await sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    kept = {}
    report, values, session = run(tmp_path, "import ctypes\na = ctypes.CDLL(None) is not None",
                                  keep=lambda s: kept.update(ready=s.client.km.ready.done(), pid=s.box.kernel_pid,
                                                             kernel=s.client.km.provisioner.kernel))
    assert values["a"] is True and kept["ready"]
    assert [(who, delay) for who, delay in pauses if "jupyter_client" in who and delay > 0] == []
    assert kept["kernel"].exited() and "native" in {f.kind for f in session.findings}  # ctypes, as reported
    finish_closing()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(kept["pid"]).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the killed kernel still runs once its sandbox closed")
