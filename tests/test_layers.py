"""The package's layers (import-linter contracts in pyproject.toml), and what the light commands import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.config import GradeSettings
from autograder.kernel.machine import cgroup_quota, kernel_threads, usable_cores
from autograder.outcomes import QuestionScore, SubmissionResult
from autograder.report.records import Records

ROOT = Path(__file__).resolve().parents[1]


def test_the_layer_contracts_hold():
    lint = shutil.which("lint-imports") or pytest.fail("import-linter is not installed (pip install -e '.[test]')")
    run = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout


def test_the_gradebook_command_imports_neither_torch_nor_pandas(tmp_path):
    out = tmp_path / "out"
    records = Records(out)
    records.add(SubmissionResult("alice", "ok", [QuestionScore("q", 3.0, 4.0)]), "digest")
    records.close()
    (tmp_path / "roster.csv").write_text("submission,name\nalice,Alice\n")
    code = ("import sys; from autograder.cli import main; "
            f"code = main(['gradebook', {str(out)!r}, '--roster', {str(tmp_path / 'roster.csv')!r}]); "
            "heavy = sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules); "
            "print('heavy:', heavy); sys.exit(code or bool(heavy))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "heavy: []" in run.stdout
    assert (out / "gradebook-csv.csv").read_text().splitlines()[1].startswith("alice,Alice,3")


def cgroup_tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "proc-cgroup").write_text(proc)
    return root, tmp_path / "proc-cgroup"


def test_a_cgroup_v2_quota_caps_the_cores(tmp_path):
    root, proc = cgroup_tree(tmp_path, "0::/grading/job1\n", {"grading/job1/cpu.max": "150000 100000\n"})
    assert cgroup_quota(root, proc) == 1.5
    assert usable_cores(root, proc) == min(2, len(__import__("os").sched_getaffinity(0)))
    root, proc = cgroup_tree(tmp_path / "unlimited", "0::/\n", {"cpu.max": "max 100000\n"})
    assert cgroup_quota(root, proc) is None


def test_a_cgroup_v1_quota_caps_the_cores_as_a_container_sees_it(tmp_path):
    # inside a container the process's own cgroup is mounted at the controller's root
    root, proc = cgroup_tree(tmp_path, "4:cpu,cpuacct:/docker/abc\n",
                             {"cpu,cpuacct/cpu.cfs_quota_us": "100000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_quota(root, proc) == 1.0
    assert usable_cores(root, proc) == 1


def test_kernel_threads_follow_the_usable_cores_not_the_host(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})  # a cpuset of one core on a many-core host
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert kernel_threads(GradeSettings(jobs=1)) == 1
    assert kernel_threads(GradeSettings(jobs=2, threads=3)) == 3
