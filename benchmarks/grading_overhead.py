"""Grading speed side by side, in one run: plain nbclient against `torchgrade grade` at --jobs 1 and 2.

On the convolution assignment's example notebooks (the solution, the blank and the flawed ones), then
copies of them in turn up to `--notebooks` (120: ten of each):

- plain nbclient: each notebook executed in a fresh `python3` kernel, one after the other, no
  checks, no sandbox: what executing the notebooks costs at the least (on `--plain` distinct
  notebooks: its time per notebook does not depend on the batch);
- torchgrade at each of `--jobs`, with and without feedback figures: sandboxed warm kernels, every
  check, results written. The time includes starting the workers and the zygote.

Prints, for each: seconds per notebook and the speed-up over plain nbclient; the first result's
time after the batch started; the overhead per submission (its grading time minus its own cells'
time), with and without the first submission (which waits for the zygote), and the batch's wall
time per notebook minus the mean cell time; the CPU time per notebook, from the first result to the last, of each
kind of process (kernels, workers, zygote, this process), and its floor under the overhead: with J submissions at a
time on C cores, they take J/C times that CPU time at the least, on average; peak memory per worker; and the totals (a copy
graded otherwise than its original is marked `!!`). Then the first result's time after a fresh
`torchgrade grade` command started (its own imports included; the median of `--repeat` commands), each next to a
fresh `python -c "import torch"` timed just before it: the floor under any first result, as the kernels and the
checks both need torch, and it varies with the machine's load. Then a table against the targets.

The package's bytecode is compiled first where it is missing, as installing it does: with PYTHONDONTWRITEBYTECODE
set, every process would otherwise compile the grader's sources again.
Run from the repository root:

    python benchmarks/grading_overhead.py [--notebooks 12] [--jobs 1 2] [--figures both|on] [--device cpu|cuda]
        [--repeat 3]
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
    """Samples this process's descendants: the peak resident memory of each, by role, and the CPU time used so far
    by role (`cpu_now`: a kernel's once its zygote reaped it)."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks: dict[int, tuple[str, int]] = {}
        self.cpu: dict[tuple[int, str], float] = {}  # (pid, role) -> CPU seconds
        self.lock = threading.Lock()
        self.sampling = 0.0  # CPU seconds this thread spent sampling
        self.done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.wait(self.interval):
            started = time.thread_time()
            for proc in me.children(recursive=True):
                try:
                    role = role_of(proc)
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                if rss > self.peaks.get(proc.pid, ("", 0))[1]:
                    self.peaks[proc.pid] = (role, rss)
                with self.lock:
                    if role != "kernel":  # a kernel's time is counted once reaped, in its zygote's children's
                        self.cpu[proc.pid, role] = times.user + times.system
                    if role == "zygote":
                        self.cpu[proc.pid, "kernels"] = times.children_user + times.children_system
            with self.lock:
                self.sampling += time.thread_time() - started  # this process's, not the grader's

    def cpu_now(self) -> dict[str, float]:
        """CPU seconds used so far by "kernels", "worker"s, "zygote"s, "other" descendants and "this process" (which
        grades at --jobs 1), as last sampled."""
        mine = psutil.Process().cpu_times()
        out = {"kernels": 0.0, "worker": 0.0, "zygote": 0.0, "other": 0.0, "this process": mine.user + mine.system}
        with self.lock:
            out["this process"] -= self.sampling
            for (_, role), seconds in self.cpu.items():
                out[role] += seconds
        return out

    def by_role(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for role, rss in self.peaks.values():
            out[role] = max(out.get(role, 0), rss)
        return out


def role_of(proc: psutil.Process) -> str:
    """A kernel is forked from the zygote (with its command line; not root, through a child that exits, so that the
    sandbox's init is its parent); what a kernel starts is the kernel's too."""
    lineage = [proc, *proc.parents()]
    zygotes = ["autograder.kernel.zygote" in " ".join(p.cmdline()) for p in lineage]
    if any(zygotes[1:]) or zygotes[0] and "python" not in lineage[1].name():
        return "kernel"
    cmd = " ".join(proc.cmdline())
    if zygotes[0]:
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


def first_result_of_the_command(bundle: Path, notebooks: list[Path], out: Path, jobs: int) -> float:
    """Seconds from launching `torchgrade grade` (a fresh process: its imports, the zygote's, the first kernel's
    start) to the first results JSON written; the command is then stopped."""
    import subprocess
    import sys

    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "autograder.cli", "grade", str(bundle), *map(str, notebooks),
                                "--out", str(out), "--jobs", str(jobs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not any((out / "results").glob("*.json")):
            if process.poll() is not None:
                raise RuntimeError(f"torchgrade grade exited ({process.returncode}) before its first result")
            time.sleep(0.02)
        return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait()


def import_torch_alone() -> float:
    """Seconds from launching a fresh `python -c "import torch"` to its saying the import is done."""
    import subprocess
    import sys

    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", "import sys, torch; sys.stdout.write('done'); sys.stdout.flush()"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        process.stdout.read(4)
        return time.perf_counter() - start
    finally:
        process.kill()
        process.wait()


def compile_bytecode() -> None:
    """The package's bytecode, as `pip install` writes it: where PYTHONDONTWRITEBYTECODE is set and none was
    written, each process of a batch would compile the grader's sources again (a tenth of a second or more each)."""
    import compileall

    import autograder

    compileall.compile_dir(str(Path(autograder.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=12)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--plain", type=int, default=12,
                        help="notebooks plain nbclient executes (its time per notebook does not depend on the batch)")
    parser.add_argument("--figures", choices=["both", "on"], default="both")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--repeat", type=int, default=3, help="fresh commands timed to their first result, each")
    args = parser.parse_args()
    compile_bytecode()

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
        for i in range(args.notebooks):  # the examples, then copies of them in turn
            original = examples[i % len(examples)]
            name = original.stem if i < len(examples) else f"{original.stem}_copy{i // len(examples)}"
            shutil.copy(original, subs / f"{name}.ipynb")
        notebooks = sorted(subs.glob("*.ipynb"))
        n = len(notebooks)
        print(f"{n} notebooks: {len(examples)} examples ({', '.join(p.stem for p in examples)}), copies of them "
              f"after that")

        sample = [p for p in notebooks if "_copy" not in p.stem][:args.plain] or notebooks[:args.plain]
        plain = plain_nbclient(sample, report.autograder_dir / "student_files", tmp / "plain") / len(sample)
        print(f"plain nbclient (fresh kernel each, no checks), on {len(sample)} of them: {plain:.2f} s per notebook")

        table: list[tuple[str, str, str, bool | None]] = []
        for jobs, figures in [(j, f) for f in ((True, False) if args.figures == "both" else (True,))
                              for j in args.jobs]:
            watcher = PeakMemory()
            watcher.start()
            firsts: list[float] = []
            used: list[dict[str, float]] = []  # CPU used so far, at each result

            def on_result(_) -> None:
                firsts.append(time.perf_counter() - start)
                used.append(watcher.cpu_now())

            start = time.perf_counter()
            batch = grade_into(bundle, notebooks, tmp / f"jobs{jobs}-{figures}",
                               GradeSettings(device=args.device, jobs=jobs, figures=figures), on_result=on_result)
            wall = time.perf_counter() - start
            watcher.done.set()
            watcher.join()
            results = batch.graded
            cells = statistics.mean(r.cell_time for r in results)
            overhead = [r.execution_time - r.cell_time for r in results]
            first = min(results, key=lambda r: r.submission)  # graded first: it waited for the zygote
            steady = [r.execution_time - r.cell_time for r in results if r is not first] or overhead
            label = f"--jobs {jobs}{'' if figures else ' --no-figures'}"
            print(f"torchgrade {label}: {wall:.1f} s, {wall / n:.2f} s per notebook, {plain / (wall / n):.1f}x "
                  f"plain nbclient; first result {firsts[0]:.2f} s after the batch started")
            print(f"   per submission: grading {statistics.mean(r.execution_time for r in results):.2f} s, own cells "
                  f"{cells:.2f} s, overhead (grading minus its cells) mean {statistics.mean(overhead):.2f} s, "
                  f"median {statistics.median(overhead):.2f}, max {max(overhead):.2f}; without the first submission "
                  f"(it waited for the zygote) {statistics.mean(steady):.2f} s; batch wall per notebook minus cells "
                  f"{wall / n - cells:.2f} s")
            roles = watcher.by_role()
            kernel = max(r.memory_peak_mb for r in results)
            worker = roles.get("worker", 0) if jobs > 1 else psutil.Process().memory_info().rss
            if len(used) > 1:  # from the first result to the last: what starting the batch costs left out
                cpu = {role: (used[-1][role] - used[0][role]) / (len(used) - 1) for role in used[0]}
                total, cores = sum(cpu.values()), len(os.sched_getaffinity(0))
                least = total * jobs / cores  # the cores are shared by the whole batch
                print(f"   CPU per notebook, first result to last: {total * 1000:.0f} ms (" + ", ".join(
                    f"{role} {seconds * 1000:.0f}" for role, seconds in cpu.items()) + f"); with {jobs} at a time on "
                    f"{cores} core(s), a submission takes at least {least:.2f} s: overhead at least "
                    f"{least - cells:.2f} s")
            print(f"   peak memory per worker: worker {worker / 2**20:.0f} MiB, zygote "
                  f"{roles.get('zygote', 0) / 2**20:.0f} MiB (shared with its kernels), largest kernel "
                  f"{kernel:.0f} MiB of its own")
            totals: dict[str, float] = {}
            for r in results:
                totals.setdefault(r.submission.split("_copy")[0], r.total)
                if totals[r.submission.split("_copy")[0]] != r.total:
                    print(f"   !! {r.submission} got {r.total:g}, its original {totals[r.submission.split('_copy')[0]]:g}")
            print(f"   totals: {', '.join(f'{k} {v:g}' for k, v in sorted(totals.items()))}")
            if figures:
                speed_up = plain / (wall / n)
                table.append((f"{label}, {n} notebooks: speed-up over plain nbclient per notebook", f"{speed_up:.1f}x",
                              *(("10x (120 notebooks), 5x (12)", speed_up >= (10 if n >= 120 else 5)) if jobs == 2
                                else ("none (the speed-up targets are for --jobs 2)", None))))
                table.append((f"{label}: first result after the batch started", f"{firsts[0]:.2f} s", "2 s",
                              firsts[0] <= 2))
                table.append((f"{label}: overhead per submission, without the first", f"{statistics.mean(steady):.2f} s",
                              "0.3 s", statistics.mean(steady) <= 0.3))

        floors: list[float] = []
        for jobs in args.jobs:
            commands = []
            for i in range(args.repeat):
                time.sleep(2)  # the last batch's sandboxes closed
                floors.append(import_torch_alone())
                commands.append(first_result_of_the_command(report.autograder_dir, notebooks,
                                                            tmp / f"command{jobs}-{i}", jobs))
            print(f"`torchgrade grade --jobs {jobs}`: first result after the command started "
                  f"{' '.join(f'{c:.2f}' for c in commands)} s; a fresh `import torch` just before each "
                  f"{' '.join(f'{f:.2f}' for f in floors[-args.repeat:])} s")
            command = statistics.median(commands)
            table.append((f"`torchgrade grade --jobs {jobs}`: first result after the command started (median of "
                          f"{args.repeat}; minus a fresh `import torch`: "
                          f"{command - statistics.median(floors[-args.repeat:]):.2f} s)", f"{command:.2f} s", "2 s",
                          command <= 2))
        table.append(("a fresh `python -c \"import torch\"` (median, the floor under a first result)",
                      f"{statistics.median(floors):.2f} s", "-", None))
        print("\n| figure (figures on) | measured | target | met |\n|---|---|---|---|")
        for what, measured, target, met in table:
            print(f"| {what} | {measured} | {target} | {'-' if met is None else 'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
