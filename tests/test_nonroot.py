"""The path a grader without root takes: no cgroups, the memory watchdog and RLIMIT_NPROC instead.

Where the tests run as root (CI), `torchgrade grade` is run for real as the unprivileged user
`nobody`, in a mount namespace where the folders holding Python and this checkout are visible to
it (a root-only home folder would otherwise hide the interpreter). Elsewhere the whole suite
already runs without root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

import hostile
from autograder.kernel.isolation import bwrap_unavailable
from conftest import ASSIGNMENTS, REPO, notebook_with

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="not root: every other test already takes the unprivileged path"),
    pytest.mark.skipif(not (shutil.which("unshare") and shutil.which("setpriv")), reason="needs unshare and setpriv"),
    pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"no sandbox here: {bwrap_unavailable()}"),
]
NOBODY = 65534


def hidden_from_nobody(path: Path) -> Path | None:
    """The topmost folder above `path` that `nobody` cannot enter, if any."""
    for parent in reversed(Path(path).resolve().parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def exposing(paths: list[Path]) -> str:
    """Shell commands (run as root in a private mount namespace) that make `paths` reachable for nobody:
    each closed folder above them is covered by an open tmpfs, and the paths are bound back into it."""
    lines = ["set -e"]
    closed: dict[Path, list[Path]] = {}
    for path in paths:
        top = hidden_from_nobody(path)
        if top is not None:
            closed.setdefault(top, []).append(Path(path).resolve())
    for n, (top, inside) in enumerate(closed.items()):
        for m, path in enumerate(inside):
            keep = f"/tmp/.tg-keep-{os.getpid()}-{n}-{m}"
            lines += [f"mkdir -p {keep}", f"mount --bind {path} {keep}"]
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {top}")
        for m, path in enumerate(inside):
            keep = f"/tmp/.tg-keep-{os.getpid()}-{n}-{m}"
            lines += [f"mkdir -p {path}", f"mount --bind {keep} {path}"]
    return "\n".join(lines)


def test_grading_as_an_unprivileged_user(convolution_build):
    root = Path(tempfile.mkdtemp(prefix="tg-nonroot-", dir="/tmp"))
    try:
        bundle, subs, out = root / "bundle", root / "submissions", root / "out"
        shutil.copytree(convolution_build.autograder_dir, bundle)
        subs.mkdir()
        shutil.copy(bundle / "solution.ipynb", subs / "solution.ipynb")
        shutil.copy(ASSIGNMENTS / "convolution" / "examples" / "library_conv.ipynb", subs / "library_conv.ipynb")
        hostile.write(notebook_with(bundle / "blank.ipynb", "CHILD_MB, KERNEL_MB = 1700, 1700\n"
                                    + hostile.SPLIT_MEMORY), subs / "memory.ipynb")
        hostile.write(notebook_with(bundle / "solution.ipynb", hostile.ESCAPE_THE_NETWORK), subs / "escape.ipynb")
        out.mkdir()
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        visible = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent, REPO]
        command = (f"{exposing(visible)}\nexec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
                   f"env HOME={root} {sys.executable} -m autograder.cli grade {bundle} {subs} --out {out} --jobs 2")
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
                              capture_output=True, text=True, timeout=900, cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rows = pd.read_csv(out / "gradebook.csv").set_index("submission")
        assert rows.loc["solution", "total"] == 21 and rows.loc["solution", "status"] == "ok"
        assert rows.loc["library_conv", "total"] == 13
        assert rows.loc["memory", "status"] == "memory"
        assert rows.loc["escape", "total"] == 21 and "network" in rows.loc["escape", "flags"]
        owners = {p.stat().st_uid for p in out.rglob("*")}
        assert owners == {NOBODY}  # everything was written by the unprivileged grader
    finally:
        shutil.rmtree(root, ignore_errors=True)
