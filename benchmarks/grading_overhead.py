"""Grading speed side by side, in one run: plain nbclient against `torchgrade grade` at --jobs 1 and 2.

On the convolution assignment's example notebooks (the solution, the blank and the flawed ones,
plus copies of the solution up to `--notebooks`):

- plain nbclient: each notebook executed in a fresh `python3` kernel, one after the other, no
  checks, no sandbox: what executing the notebooks costs at the least;
- torchgrade at --jobs 1 and --jobs 2, with and without feedback figures: sandboxed warm kernels, every check, results written. The
  time includes starting the workers and their zygotes (paid once per worker).

Prints seconds per notebook for each, the speed-up over plain nbclient, the overhead per
submission at --jobs 1 (grading time minus the notebook's own cell time, per submission, and
batch wall time per notebook minus mean cell time), and peak memory per worker (the worker, its
zygote and the largest kernel). Run from the repository root:

    python benchmarks/grading_overhead.py [--notebooks 12] [--jobs 1 2] [--device cpu|cuda]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `torchgrade` sets it, before torch loads

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from autograder.grading.proof import assign
from autograder.build.assignment import load_assignment
from autograder.cli.run_batch import grade_into
from autograder.config import GradeSettings
from autograder.cli.demo import example_submissions, repo_root


class PeakMemory(threading.Thread):
    """Samples this process's descendants: the peak resident memory of each, by role."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks: dict[int, tuple[str, int]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.wait(self.interval):
            for proc in me.children(recursive=True):
                try:
                    role = role_of(proc)
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                if rss > self.peaks.get(proc.pid, ("", 0))[1]:
                    self.peaks[proc.pid] = (role, rss)

    def by_role(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for role, rss in self.peaks.values():
            out[role] = max(out.get(role, 0), rss)
        return out


def role_of(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    if "autograder.kernel.zygote" in cmd:
        return "zygote"
    if "multiprocessing" in cmd:
        return "worker"
    return "other"


def plain_nbclient(notebooks: list[Path], files: Path, work: Path) -> float:
    """Each notebook in a fresh kernel, in a working directory with the student files; no checks."""
    start = time.perf_counter()
    for path in notebooks:
        folder = work / path.stem
        shutil.copytree(files, folder)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=12)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = repo_root() / "assignments" / "convolution"
        start = time.perf_counter()
        report = assign(source, tmp / "dist", GradeSettings(device=args.device))
        print(f"assign convolution: {time.perf_counter() - start:.1f} s")
        bundle = load_assignment(report.autograder_dir)
        subs = tmp / "submissions"
        subs.mkdir()
        examples = example_submissions(report.autograder_dir, source)
        for i in range(args.notebooks):
            original = examples[i] if i < len(examples) else examples[0]
            name = original.stem if i < len(examples) else f"solution_copy{i}"
            shutil.copy(original, subs / f"{name}.ipynb")
        notebooks = sorted(subs.glob("*.ipynb"))
        n = len(notebooks)
        print(f"{n} notebooks: {', '.join(p.stem for p in notebooks)}")

        plain = plain_nbclient(notebooks, report.autograder_dir / "student_files", tmp / "plain")
        print(f"plain nbclient (fresh kernel each, no checks): {plain:.1f} s, {plain / n:.2f} s per notebook")

        for jobs, figures in [(jobs, figures) for figures in (True, False) for jobs in args.jobs]:
            watcher = PeakMemory()
            watcher.start()
            start = time.perf_counter()
            batch = grade_into(bundle, notebooks, tmp / f"jobs{jobs}-{figures}",
                                GradeSettings(device=args.device, jobs=jobs, figures=figures))
            wall = time.perf_counter() - start
            watcher.done.set()
            watcher.join()
            results = batch.graded
            cells = statistics.mean(r.cell_time for r in results)
            overhead = [r.execution_time - r.cell_time for r in results]
            print(f"torchgrade --jobs {jobs}{'' if figures else ' --no-figures'}: {wall:.1f} s, "
                  f"{wall / n:.2f} s per notebook, {plain / wall:.1f}x plain nbclient")
            first = min(results, key=lambda r: r.submission)  # graded first: it waited for the zygote
            steady = [r.execution_time - r.cell_time for r in results if r.execution_time < 0.9 * max(
                x.execution_time for x in results)] if jobs == 1 else overhead
            print(f"   per submission: grading {statistics.mean(r.execution_time for r in results):.2f} s, own cells "
                  f"{cells:.2f} s, overhead mean {statistics.mean(overhead):.2f} s (median "
                  f"{statistics.median(overhead):.2f}, max {max(overhead):.2f}); batch wall per notebook minus "
                  f"cells {wall / n - cells:.2f} s")
            if jobs == 1:
                print(f"   overhead without the one-off zygote start (paid by {first.submission}): mean "
                      f"{statistics.mean(steady):.2f} s over {len(steady)} submissions")
            roles = watcher.by_role()
            kernel = max(r.memory_peak_mb for r in results)
            worker = roles.get("worker", 0) if jobs > 1 else psutil.Process().memory_info().rss
            print(f"   peak memory per worker: worker {worker / 2**20:.0f} MiB, zygote "
                  f"{roles.get('zygote', 0) / 2**20:.0f} MiB (shared with its kernels), largest kernel "
                  f"{kernel:.0f} MiB of its own")
            totals = ", ".join(f"{r.submission} {r.total:g}" for r in sorted(results, key=lambda r: r.submission))
            print(f"   totals: {totals}")


if __name__ == "__main__":
    main()
