"""Hostile submissions: every attack of the threat model, written as a determined student would.

Built from the convolution assignment's solution or blank notebook. The attacks that aim at the
grader's files are given the real paths (the bundle, `--out`, the other submissions), as if they
had found them; in a sandbox none of those paths exists.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from conftest import cell_index_defining

FORGE_FROM_REFERENCE = """import importlib.util, os, torch
seen = []
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            seen.append(open(f'/proc/{pid}/cmdline', 'rb').read())
        except OSError:
            pass
try:
    spec = importlib.util.spec_from_file_location('stolen', BUNDLE + '/reference.py')
    stolen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stolen)
    conv2d_single, conv2d, max_pool2d = stolen.conv2d_single, stolen.conv2d, stolen.max_pool2d
    def edge_magnitude(image):
        return stolen.edge_magnitude(image)
except Exception as e:
    forged = repr(e)
_save = torch.save
def save(obj, f, *args, **kwargs):  # the old attack: answer every probe with the reference's value
    return _save(obj, f, *args, **kwargs)
torch.save = save
"""

TAMPER_WITH_OUTPUTS = """import json, os, shutil
results = []
def attempt(what, action):
    try:
        action()
        results.append((what, 'done'))
    except Exception as e:
        results.append((what, type(e).__name__))
attempt('zero an earlier grade', lambda: open(OUT + '/results/a_victim.json', 'w').write(json.dumps(
    {'score': 0, 'tests': [], 'extra_data': {'submission': 'a_victim', 'status': 'ok', 'max_total': 21}})))
attempt('invent a student', lambda: open(OUT + '/results/ghost.json', 'w').write(json.dumps(
    {'score': 21, 'tests': [], 'extra_data': {'submission': 'ghost', 'status': 'ok', 'max_total': 21}})))
attempt('spoil the records', lambda: open(OUT + '/.torchgrade-records.sqlite', 'wb').write(b'garbage'))
attempt('blank a later notebook', lambda: shutil.copy(BLANK, SUBMISSIONS + '/c_victim.ipynb'))
attempt('rewrite the reference', lambda: open(BUNDLE + '/reference.py', 'a').write('\\nraise SystemExit\\n'))
attempt('rewrite the hidden checks', lambda: open(BUNDLE + '/checks/hidden.py', 'a').write('\\nchecks = None\\n'))
for planted in ('ipykernel_launcher.py', 'sitecustomize.py'):
    attempt('plant ' + planted, lambda: open(BUNDLE + '/student_files/' + planted, 'w').write(
        "open('/tmp/PWNED', 'w').write('x')\\n"))
attempt('write the student files', lambda: open('/run/torchgrade-files/planted.txt', 'w').write('x'))
"""

OUTLIVE = """import glob, os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        # it never dies of an error of its own (a file another uid owns, a folder gone mid-walk): it must be
        # ended, and flagged, by the grader
        hunt = ("import glob, time\\n"
                "while True:\\n"
                "    try:\\n"
                "        for f in glob.glob('/run/torchgrade*/kernel.json') + glob.glob('/tmp/torchgrade-*/**/kernel.json', "
                "recursive=True):\\n"
                "            open('/tmp/found', 'a').write(f + '\\\\n')\\n"
                "    except Exception:\\n"
                "        pass\\n"
                "    time.sleep(0.2)\\n")
        os.execv(sys.executable, [sys.executable, '-c', hunt, MARKER])
    os._exit(0)
time.sleep(0.3)
"""

KILL_THE_GRADER = """import os, signal
victims = []
for pid in os.listdir('/proc'):
    if pid.isdigit() and int(pid) != os.getpid():
        for sig in (signal.SIGINT, signal.SIGSTOP, signal.SIGKILL):  # INT: a shell as init may catch it
            try:
                os.kill(int(pid), sig)
                victims.append((pid, sig))
            except OSError:
                pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
"""

SPLIT_MEMORY = """import os, time, torch
if os.fork() == 0:
    os.setsid()
    hoard = torch.ones(CHILD_MB * 2**18)
    time.sleep(60)
    os._exit(0)
time.sleep(1)
mine = torch.ones(KERNEL_MB * 2**18)
time.sleep(3)
"""

ESCAPE_THE_NETWORK = """import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
escaped = []
for target in ('/proc/1/ns/net', '/proc/1/ns/mnt', '/proc/1/ns/user'):
    try:
        if libc.setns(os.open(target, os.O_RDONLY), 0) == 0:
            escaped.append(target)
    except OSError:
        pass
try:
    socket.create_connection(('1.1.1.1', 53), timeout=3)
    escaped.append('network')
except OSError:
    pass
"""

# The library guard, taken apart five ways; each conv2d below uses F.conv2d.
LIBRARY_CONV = "    return F.conv2d(x, weight, bias, stride=stride, padding=padding)\n"
CONV2D_HEAD = "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
BYPASSES = {
    "bypass_save": (  # empty the response's list of forbidden operators as it is saved
        "import torch, torch.nn.functional as F\n_save = torch.save\n"
        "def save(obj, f, *args, **kwargs):\n"
        "    if isinstance(obj, dict):\n"
        "        for key in ('forbidden', 'used'):\n"
        "            if key in obj:\n"
        "                obj[key] = []\n"
        "    return _save(obj, f, *args, **kwargs)\n"
        "torch.save = save\n" + CONV2D_HEAD + LIBRARY_CONV),
    "bypass_disable_modes": (  # pop every dispatch mode around the library call
        "import torch.nn.functional as F\nfrom torch.utils._python_dispatch import _disable_current_modes\n"
        + CONV2D_HEAD + "    with _disable_current_modes():\n    " + LIBRARY_CONV),
    "bypass_replace_mode": (  # make the guard's base class a no-op
        "import torch.nn.functional as F, torch.utils._python_dispatch as dispatch\n"
        "class NoMode:\n    def __init__(self, *args, **kwargs):\n        pass\n"
        "    def __enter__(self):\n        return self\n    def __exit__(self, *exc):\n        return False\n"
        "dispatch.TorchDispatchMode = NoMode\n" + CONV2D_HEAD + LIBRARY_CONV),
    "bypass_compile": (  # a global `compile` that rewrites the probe's source before it runs
        "import torch.nn.functional as F, builtins\n_compile = builtins.compile\n"
        "def compile(source, filename, mode, *args, **kwargs):\n"
        "    if 'probe' in str(filename):\n"
        "        source = source.replace('fragment in name', 'False')\n"
        "    return _compile(source, filename, mode, *args, **kwargs)\n" + CONV2D_HEAD + LIBRARY_CONV),
    "bypass_frames": (  # clear what the guard recorded, from the caller's frames
        "import sys, torch.nn.functional as F\n" + CONV2D_HEAD
        + "    out = F.conv2d(x, weight, bias, stride=stride, padding=padding)\n"
          "    frame = sys._getframe(1)\n"
          "    while frame is not None:\n"
          "        for value in list(frame.f_locals.values()):\n"
          "            for name in ('used', 'events', 'forbidden'):\n"
          "                if isinstance(getattr(value, name, None), list):\n"
          "                    getattr(value, name).clear()\n"
          "        frame = frame.f_back\n"
          "    return out\n"),
}

HANG_ON_STRIDE = """def conv2d(x, weight, bias=None, stride=1, padding=0):
    if stride != 1 and stride != (1, 1):
        while True:
            pass
    return _conv2d(x, weight, bias, stride=stride, padding=padding)
"""
HANG_SWALLOWING = """import time
def conv2d(x, weight, bias=None, stride=1, padding=0):
    if stride != 1 and stride != (1, 1):
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass
    return _conv2d(x, weight, bias, stride=stride, padding=padding)
"""


def prefix(**constants) -> str:
    return "".join(f"{name} = {str(value)!r}\n" for name, value in constants.items())


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def replaced(solution: Path, name: str, source: str) -> nbformat.NotebookNode:
    """The solution with the cell defining `name` replaced."""
    nb = nbformat.read(solution, as_version=4)
    nb.cells[cell_index_defining(nb, name)].source = source
    return nb


def hanging(solution: Path, body: str) -> nbformat.NotebookNode:
    """The solution whose conv2d hangs when stride > 1, and works otherwise; its own cells never call it with
    a stride (its self-checks are gone), so only the grader's calls hang."""
    nb = nbformat.read(solution, as_version=4)
    nb.cells = [c for c in nb.cells if "grader.check" not in c.source]
    index = cell_index_defining(nb, "conv2d")
    nb.cells[index].source = nb.cells[index].source.replace("def conv2d(", "def _conv2d(", 1)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(body))
    return nb
