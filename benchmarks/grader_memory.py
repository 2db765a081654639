"""The grader's peak memory for a correct batch and for a batch with output floods, side by side in one run.

A flood notebook publishes, from one cell, 60 × (a 1 MiB error, a 1 MiB display update, a 1 MiB widget
message) and one 40 MiB stream message straight through the kernel's IOPub socket: what a hostile notebook
can make a grader keep. Prints the peak resident memory of the grading worker (where nbclient keeps every
cell's outputs): at --jobs 1 the grader is this process, so its peak after the correct batch and after the
flood batch (which runs second) says what the floods added. Run from the repository root:

    python benchmarks/grader_memory.py [--notebooks 8] [--floods 4]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grading_overhead import PeakMemory  # noqa: E402

from autograder.build.assignment import load_assignment  # noqa: E402
from autograder.cli.demo import repo_root  # noqa: E402
from autograder.cli.run_batch import grade_into  # noqa: E402
from autograder.config import GradeSettings  # noqa: E402
from autograder.grading.proof import assign  # noqa: E402

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
send("stream", {"name": "stdout", "text": "x" * (40 << 20)})
"""


def batch(bundle, notebooks: list[Path], out: Path) -> tuple[float, int, int, list[str]]:
    """Grades at --jobs 1, in this process: its peak resident memory (ru_maxrss, since it started) is the grader's."""
    watcher = PeakMemory(interval=0.05)
    watcher.start()
    start = time.perf_counter()
    report = grade_into(bundle, notebooks, out, GradeSettings(jobs=1, figures=False, force=True))
    wall = time.perf_counter() - start
    watcher.done.set()
    watcher.join()
    worker = watcher.by_role().get("worker", 0)
    totals = [f"{r.submission} {r.total:g} {r.status}" for r in sorted(report.graded, key=lambda r: r.submission)]
    return wall, worker, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=8)
    parser.add_argument("--floods", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report = assign(repo_root() / "assignments" / "convolution", tmp / "dist", GradeSettings())
        bundle = load_assignment(report.autograder_dir)
        solution = report.autograder_dir / "solution.ipynb"
        (tmp / "correct").mkdir()
        correct = [tmp / "correct" / f"correct{i:02}.ipynb" for i in range(args.notebooks)]
        for path in correct:
            shutil.copy(solution, path)
        floods = []
        for i in range(args.floods):
            nb = nbformat.read(solution, as_version=4)
            nb.cells.insert(len(nb.cells) // 2, nbformat.v4.new_code_cell(FLOOD))
            floods.append(tmp / "correct" / f"flood{i:02}.ipynb")
            nbformat.write(nb, floods[-1])
        for name, notebooks in (("correct batch", correct), ("correct batch + floods", correct + floods)):
            wall, worker, main_rss, totals = batch(bundle, notebooks, tmp / name.replace(" ", "_"))
            print(f"{name} ({len(notebooks)} notebooks, --jobs 1): {wall:.1f} s; the grader's peak resident memory "
                  f"so far {main_rss / 2**20:.0f} MiB" + (f", worker {worker / 2**20:.0f} MiB" if worker else ""))
            print(f"   {', '.join(totals)}")


if __name__ == "__main__":
    main()
