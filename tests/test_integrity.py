"""Integrity findings without a kernel: the source scan, the integrity channel, the sandbox's command line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings

import nbformat
import pytest

from autograder.config import Limits
from autograder.kernel import isolation
from autograder.kernel.integrity import Finding, IntegrityChannel, needs_ipython, needs_watch, scan_source
from autograder.kernel.spec import KernelSpec, kernel_env
from autograder.build.notebook import SETUP_SOURCE


def kinds(*sources: str) -> set[str]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return {f.kind for f in scan_source(nb, trusted=[SETUP_SOURCE])}  # the bundle's own first cell, as grading passes it


@pytest.mark.parametrize("source, kind", [
    ("import sys\nf = sys._getframe(1)", "frames"),
    ("import inspect\nf = inspect.currentframe().f_back", "frames"),
    ("import gc\nobjs = gc.get_objects()", "introspection"),
    ("g = f.__globals__", "introspection"),
    ("from torch.utils._python_dispatch import _disable_current_modes", "guard-tampered"),
    ("import torch\nwith torch._C._DisableTorchDispatch():\n    pass", "guard-tampered"),
    ("import torch\ntorch._C._dispatch_tls_set_dispatch_key_excluded(torch._C.DispatchKey.PreDispatch, True)",
     "guard-tampered"),
    ("import torch\nk = getattr(torch.ops.aten.convolution.default, '_op_dk')", "guard-tampered"),
    ("import torch\ny = torch.ops.aten.convolution.default.redispatch(keys, x, w)", "guard-tampered"),
    ("import sys\nsys.setprofile(None)", "guard-tampered"),
    ("import torch\ntorch.save = lambda *a, **k: None", "grader-patched"),
    ("import builtins\nbuiltins.compile = None", "grader-patched"),
    ("import sys\nsys.modules['torch'] = None", "grader-patched"),
    ("get_ipython().kernel.shell_handlers.clear()", "grader-patched"),
    ("import ctypes", "native"),
    ("open('/proc/1/cmdline').read()", "processes"),
    ("import os\nos.listdir('/proc/self/fd')", "processes"),
    ("!cat /proc/1/environ", "processes"),
    ("x = 1\n%system cat /proc/1/environ", "processes"),  # a magic after Python: the cell is IPython's, not Python
    ("files = !ls /proc/self/fd", "processes"),
    ("%%bash\ncat /proc/1/environ", "processes"),
    ("    import ctypes\n    x = 1", "native"),  # an indented cell: IPython dedents it, and so must the scan
    ("import glob\nglob.glob('/tmp/*/kernel-*.json')", "processes"),
    ("import subprocess\nsubprocess.run(['unshare', '-U'])", "escape"),
    ("exec(payload)", "dynamic-code"),
    ("m = __import__(name)", "dynamic-code"),
])
def test_the_source_scan_finds_what_taking_the_grader_apart_needs(source, kind):
    assert kind in kinds(source)


def test_honest_notebooks_are_not_flagged():
    honest = [
        "from autograder.selfcheck import Grader\ngrader = Grader()",
        SETUP_SOURCE,  # the first cell of every student notebook
        "import gc, torch\nmodel.eval()\ngc.collect()\nresult = model.compile if hasattr(model, 'compile') else None",
        "!nvidia-smi\n%matplotlib inline\nprint(open('/proc/cpuinfo').read()[:10])",
        "import torch.nn.functional as F\ny = F.conv2d(x, w)  # a library call is the guard's business, not a flag",
        "def train(model, loader):\n    for x, y in loader:\n        loss = F.cross_entropy(model(x), y)\n    return loss",
        "def broken(:\n    pass",  # a syntax error is the student's problem, not an integrity finding
    ]
    assert kinds(*honest) == set()


def test_a_cell_that_is_python_is_scanned_as_it_is_without_importing_ipython():
    """A cell that holds nothing IPython's transforms act on is scanned as written, so that grading a notebook
    without magics or prompts never imports IPython (a sixth of a second before the first result, a quarter where
    the batch starts with an unanswered notebook: an indented `...` body is an Ellipsis to IPython too)."""
    code = ("import sys, nbformat; from autograder.kernel.integrity import scan_source, python_source; "
            "cell = 'import ctypes\\ndef f(x):\\n    y = x[..., 0]\\n    return y % 2 != 0  # why?'; "
            "blank = 'def conv2d_single(x, w):\\n    ...\\n\\nclass Net:\\n    def forward(self, x):\\n        ...  # yours'; "
            "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (cell, blank)]); "
            "assert [f.kind for f in scan_source(nb)] == ['native']; assert 'IPython' not in sys.modules, 'imported'; "
            "assert 'get_ipython' in python_source('!ls'); assert 'IPython' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_which_cells_go_through_ipython():
    python = ["def f(x):\n    ...", "class A:\n    def g(self):\n        ...  # yours\n\tx = ...", "y = x[..., 0]"]
    ipython = ["0\n...", "0\n... x", "x = {\n    ...: 1}", "d = {\n  ....: 2}", "x\n    >>> y", " x = 1",
               "x = 1\n%time f()", "a\rb"]
    assert not any(needs_ipython(c) for c in python)
    assert all(needs_ipython(c) for c in ipython)


@pytest.mark.parametrize("source, kind", [
    # `... X` parses as Python (an Ellipsis); IPython strips the prompt, and the escape after it runs
    ("0\n... /__import__ ['ctypes'][0]\n", "dynamic-code"),
    ("0\n... /exec ['import\\x20ctypes'][0]\n", "dynamic-code"),
    ("0\n... ;exec +\"if print('x', __import__('ctypes').CDLL(None)) else\".strip()\n", "dynamic-code"),
    ("0\n... %cat /proc/self/environ\n", "processes"),
    ("0\n... %sx .connection_file\n", "processes"),
    ("In [1]: x\nIn [2]: !cat /proc/1/environ", "processes"),
    # IPython 9 strips prompts (indented too, `...` without its space) wherever a `>>>` line is outside what it takes
    # for a triple-quoted string, and it takes `s = """` for code
    ('s = """\n  >>>\n"""\n...;exec +"if print(\'x\', __import__(\'ctypes\').CDLL(None)) else".strip()\n', "dynamic-code"),
    ('s = """\n\t>>> x\n"""\n...%cat /proc/self/environ\n', "processes"),
    # one string to Python, several lines to IPython (str.splitlines breaks at \x0c, \x1c, \u2028...): the magic
    # assignment it then sees closes the string and opens it again around real code
    ("'\x0cz = %and ; import ctypes; ctypes.CDLL(None) #\"'\n", "native"),
    ("'\x0bz = %and ; import sys; sys._getframe(0) #\"'", "frames"),
    ("'\u2028z = %and ; exec(\"1\") #\"'", "dynamic-code"),
    ("'\x1cz = %and ; import ctypes; ctypes.CDLL(None) #\"'\n", "native"),
])
def test_a_cell_is_scanned_as_ipython_runs_it_when_it_parses_as_python_too(source, kind):
    """Found by a review: cells that parse as Python, where IPython's prompt stripping or line splitting makes the
    kernel run code the untransformed source only holds as names, an Ellipsis or a string. (Which of them IPython
    rewrites depends on its version: IPython 9 no longer strips these `... ` prompts, 8 does. Whatever the
    installed one runs, the scan sees.)"""
    from IPython.core.inputtransformer2 import TransformerManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ran = TransformerManager().transform_cell(source)
    assert kinds(ran) <= kinds(source)  # what the kernel runs, scanned, is no more than what the scan saw
    if ran.strip() != source.strip():  # where this IPython rewrites the cell, it runs what is flagged
        assert kind in kinds(ran) and kind in kinds(source)


def test_the_closer_watch_is_for_source_that_reaches_into_the_interpreter():
    assert needs_watch([Finding("frames", "source", "x")])
    assert not needs_watch([Finding("processes", "source", "x"), Finding("escape", "source", "y")])


def feed(channel: IntegrityChannel, *lines: str) -> None:
    os.write(channel.write_fd, "".join(f"{line}\n" for line in lines).encode())


def test_the_channel_attributes_forbidden_operators_to_their_call():
    channel = IntegrityChannel()
    digest = hashlib.sha256(b"answer").hexdigest()
    feed(channel, "O conv2d", "B one", "O convolution", "P scipy.signal.convolve2d", "O convolution",
         f"E one {digest}", "B two", f"E two {hashlib.sha256(b'other').hexdigest()}",
         "A introspection: gc.get_objects at line 3: gc.get_objects()", "S the notebook replaced torch.save")
    assert channel.call_events("one", b"answer") == ["convolution", "scipy.signal.convolve2d"]
    assert channel.call_events("two", b"answer") == [
        "guard tampered: the answer the grader received is not the one the guard saw"]
    assert "did not report" in channel.call_events("three", b"answer", timeout=0.2)[0]
    channel.close()
    assert {f.kind for f in channel.findings()} == {"introspection", "grader-patched"}


def test_the_channel_keeps_a_bounded_record_of_a_flood():
    channel = IntegrityChannel()
    feed(channel, *(["A network: socket.connect"] * 6000))
    channel.close()
    assert len(channel.lines) == 5000
    assert "flooded" in {f.kind for f in channel.findings()}


def test_the_channel_closes_on_what_its_killed_writers_wrote_without_waiting_for_their_exit():
    """A session closes the channel once it has sent SIGKILL to every process of the sandbox: what the pipe holds
    then is all that was written. It is read at once (a killed kernel still holding the write end while it unmaps
    its memory is not waited for), nothing arriving later is taken, and the read end goes once the last holder has."""
    channel = IntegrityChannel()
    holder = os.dup(channel.write_fd)  # a killed kernel that has not exited yet
    feed(channel, "A introspection: gc.get_objects at line 3: gc.get_objects()")
    channel.close()
    assert {f.kind for f in channel.findings()} == {"introspection"}
    os.write(holder, b"A network: socket.connect\n")  # (a killed process writes nothing: were it to, not taken)
    read_end, pipe = channel.read_fd, os.fstat(channel.read_fd).st_ino
    os.close(holder)
    channel.thread.join(timeout=5)
    assert not channel.thread.is_alive() and {f.kind for f in channel.findings()} == {"introspection"}
    try:
        assert os.fstat(read_end).st_ino != pipe  # its number taken since by another file, or
    except OSError:
        pass  # closed


def test_the_channel_waits_for_other_holders_when_asked():
    """A kernel with processes of its own: they hold the write end too, and end only as the sandbox's init exits,
    after the kernel was killed; `Session.stop` then asks the channel to wait for the pipe to close, so what they
    write on the way is read too."""
    import threading
    import time

    channel = IntegrityChannel()
    holder = os.dup(channel.write_fd)  # the kernel's child, still running

    def ends_later():
        time.sleep(0.2)
        os.write(holder, b"A network: socket.connect\n")
        os.close(holder)

    threading.Thread(target=ends_later).start()
    channel.close(wait=5)
    assert {f.kind for f in channel.findings()} == {"network"} and not channel.thread.is_alive()


LIMITS = isolation.SandboxLimits(memory_bytes=1 << 30, processes=64, disk_bytes=256 << 20, file_bytes=1 << 20)


def test_the_sandbox_command_line(tmp_path):
    files, runtime = tmp_path / "files", tmp_path / "runtime"
    cmd = isolation.bwrap_command("bwrap", files, runtime, [tmp_path / "env"], LIMITS)
    joined = " ".join(cmd)
    for option in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                   "--cap-drop ALL", "--clearenv", "--proc /proc", f"--size {isolation.DEV_BYTES} --tmpfs /dev",
                   f"--size {256 << 20} --tmpfs /dev/shm", "--remount-ro /dev",
                   f"--size {isolation.RUNTIME_BYTES} --tmpfs {isolation.RUNTIME}"):
        assert option in joined
    assert f"--ro-bind {tmp_path / 'env'} {tmp_path / 'env'}" in joined  # the Python environment, read-only
    assert f"--ro-bind {files} {isolation.FILES}" in joined
    assert f"--size {256 << 20} --tmpfs /tmp" in joined and f"--tmpfs {isolation.WORKDIR}" in joined
    assert "--bind" not in cmd and str(runtime) not in joined  # no host folder is writable: every one is sized
    assert "/dev/nvidia0" not in joined and "/sys" not in cmd
    # a bubblewrap that cannot size its file systems: its own /dev, and the runtime folder bound from the host
    old = " ".join(isolation.bwrap_command("bwrap", files, runtime, [], LIMITS, sized=False))
    assert "--dev /dev" in old and f"--bind {runtime} {isolation.RUNTIME}" in old


def test_an_environment_below_tmp_is_not_hidden_by_the_private_tmp(tmp_path):
    venv = "/tmp/ci/venv"
    cmd = isolation.bwrap_command("bwrap", tmp_path, tmp_path, [isolation.Path(venv)], LIMITS)
    assert cmd.index("/tmp") < cmd.index(venv)  # bubblewrap mounts in order: the bind goes on top of the tmpfs


def test_a_cuda_sandbox_sees_the_gpu_devices(tmp_path):
    devices = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm")
    cmd = isolation.bwrap_command("bwrap", tmp_path, tmp_path, [], LIMITS, devices)
    joined = " ".join(cmd)
    for device in devices:
        assert f"--dev-bind {device} {device}" in joined
    assert "--ro-bind /sys /sys" in joined


def test_gpu_device_files_are_found_by_name(monkeypatch):
    monkeypatch.setattr(isolation.os, "listdir", lambda path: ["null", "nvidia0", "nvidiactl", "nvidia-uvm", "dri",
                                                                "tty"])
    assert isolation.gpu_devices() == ("/dev/dri", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl")


def test_each_kernel_sees_only_its_gpu():
    spec = KernelSpec(Limits(), threads=1, device="cuda", seed=0, gpu=3)
    assert kernel_env(spec, "/home/student", "/tmp")["CUDA_VISIBLE_DEVICES"] == "3"
    cpu = KernelSpec(Limits(), threads=1, device="cpu", seed=0, gpu=None)
    assert kernel_env(cpu, "/home/student", "/tmp")["CUDA_VISIBLE_DEVICES"] == ""


def test_a_host_without_bubblewrap_fails_closed(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHGRADE_BWRAP", str(tmp_path / "missing-bwrap"))
    isolation.bwrap_unavailable.cache_clear()
    try:
        with pytest.raises(isolation.IsolationUnavailable, match="--no-isolation"):
            isolation.Bubblewrap().check()
        assert isolation.trusted_isolation() == "none"
        isolation.Unisolated().check()  # trusted work needs nothing
    finally:
        isolation.bwrap_unavailable.cache_clear()


def test_unknown_isolation_is_a_named_error():
    from autograder.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown isolation 'docker'; known: bwrap, user, none"):
        isolation.get_isolation("docker")


def test_the_zygote_refuses_to_fork_once_cuda_is_initialised(monkeypatch):
    import sys
    import types

    from autograder.kernel import zygote

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", fake)
    read, write = os.pipe()
    reply = zygote.handle(b"{}", [read, write], {}, boot=None)
    assert "CUDA was initialised" in reply["error"]
