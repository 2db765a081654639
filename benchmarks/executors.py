"""Bookkeeping and executors, in one run: the cost of recording results as a batch grows, and the local pool
side by side with a Dask LocalCluster.

1. Recording: `--results` synthetic results (1,000 and 10,000 by default) through the batch's
   bookkeeping, no kernels: each recorded in the SQLite records, its gradebook row appended, its
   results JSON and feedback files written, and the gradebook written in full at the end; seconds in
   all, per result, and the growth from the smallest count to the largest (10x results: ~10x time
   when linear). Also the records and the gradebook alone, without the per-result files.
2. Throughput: the same notebooks (the convolution assignment's examples, the solution and the blank,
   plus copies of the solution up to `--notebooks`, 20 by default) graded with `--executor local` and
   with `--executor dask` on a LocalCluster, both with `--jobs` workers (2 by default), taking turns for
   `--rounds` rounds (3 by default; a shared machine is noisy, so the ratio is given per round and as
   the median). Wall time includes starting the workers and their zygote; "steady" counts from the first
   result to the last.

Run from the repository root (needs torchgrade[dask]):

    python benchmarks/executors.py [--notebooks 20] [--jobs 2] [--rounds 3] [--results 1000 10000] [--skip-throughput]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `torchgrade` sets it, before torch loads

import argparse
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

# Heavy imports stay inside the functions, as in `torchgrade` (whose main module imports nothing heavy): Dask's
# worker processes start by importing this module again, and should not pay for torch there.


def throughput(notebooks: int, jobs: int, rounds: int, tmp: Path) -> None:
    from autograder.grading.proof import assign
    from autograder.build.assignment import load_assignment
    from autograder.cli.run_batch import grade_into
    from autograder.config import GradeSettings
    from autograder.cli.demo import example_submissions, repo_root

    source = repo_root() / "assignments" / "convolution"
    report = assign(source, tmp / "dist", GradeSettings())
    bundle = load_assignment(report.autograder_dir)
    subs = tmp / "submissions"
    subs.mkdir()
    examples = example_submissions(report.autograder_dir, source)
    for i in range(notebooks):
        original = examples[i] if i < len(examples) else examples[0]
        shutil.copy(original, subs / (f"{original.stem}.ipynb" if i < len(examples) else f"solution_copy{i}.ipynb"))
    paths = sorted(subs.glob("*.ipynb"))
    print(f"throughput: {len(paths)} convolution notebooks, {jobs} workers each, {os.cpu_count()} cores, "
          f"{rounds} rounds, the executors taking turns")
    walls, steadies, books = defaultdict(list), defaultdict(list), {}
    for round_ in range(rounds):
        # in turns, Dask first: the first to start the fork server (one per process) sets what it imports, and
        # `grade --executor dask` starts it with Dask's choice
        for executor in ("dask", "local") if round_ % 2 == 0 else ("local", "dask"):
            stamps: list[float] = []
            out = tmp / f"{executor}{round_}"
            start = time.perf_counter()
            batch = grade_into(bundle, paths, out, GradeSettings(jobs=jobs, executor=executor),
                                on_result=lambda r: stamps.append(time.perf_counter()))
            wall = time.perf_counter() - start
            steady = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
            walls[executor].append(wall)
            steadies[executor].append(steady)
            books.setdefault(executor, (out / "gradebook.csv").read_text())
            print(f"  {executor:5}  {wall:6.1f} s in all, {len(paths) / wall * 60:5.1f} notebooks/min; first result "
                  f"after {stamps[0] - start:5.1f} s, then {steady:.2f} s per notebook; "
                  f"{sum(r.status == 'ok' for r in batch.graded)} ok")
            shutil.rmtree(out)
    ratios = [d / local for d, local in zip(walls["dask"], walls["local"])]
    print(f"  dask / local, wall time: {', '.join(f'{r:.2f}' for r in ratios)} by round, median "
          f"{statistics.median(ratios):.2f}; median steady time per notebook "
          f"{statistics.median(steadies['dask']) / statistics.median(steadies['local']):.2f}; gradebooks "
          f"{'identical' if books['dask'] == books['local'] else 'DIFFER'}")


def synthetic(config, i: int):
    """A result shaped like a real one: a few checks per question, messages and hints, sometimes flags."""
    from autograder.checks import Outcome
    from autograder.outcomes import QuestionScore, SubmissionResult

    questions = []
    for q in config.questions:
        outcomes = [Outcome(f"{q.id}_check{k}", q.id, k == 0, 1.0, (i + k) % 2, f"expected shape (2, 4, 6, 6), "
                            f"got (2, 4, 5, 5) on input {i}", "check the padding", 0.01) for k in range(3)]
        questions.append(QuestionScore(q.id, q.points * sum(o.score for o in outcomes) / 3, q.points, outcomes))
    flags = [{"kind": "native-code", "origin": "source", "detail": "ctypes"}] if i % 50 == 0 else []
    return SubmissionResult(f"student{i:06}", "ok", questions, path=f"/submissions/student{i:06}.ipynb",
                            execution_time=3.2, cell_time=1.1, flags=flags)


class Instant:
    """An executor that returns synthetic results at once: only the batch's bookkeeping is timed."""

    def __init__(self, settings):
        pass

    def check(self) -> None:
        pass

    def running(self) -> dict[str, int]:
        return {}

    def run(self, assignment, submissions, finish) -> None:
        for i, each in enumerate(submissions):
            finish(synthetic(assignment.config, i))


def recording(counts: list[int], tmp: Path) -> None:
    from autograder.cli.run_batch import grade_into
    from autograder.config import AssignmentConfig, GradeSettings
    from autograder.cli.demo import repo_root
    from autograder.extensions import REGISTRIES
    from autograder.report.gradebook import Gradebook
    from autograder.report.records import Records

    config = AssignmentConfig.load(repo_root() / "assignments" / "convolution" / "assignment.toml")
    REGISTRIES["executor"]["instant"] = Instant
    print("recording synthetic results (no kernels):")
    full, bare = {}, {}
    for n in [50, *counts]:  # the first, uncounted, pays for one-off imports
        folder = Path(tempfile.mkdtemp(prefix=f"record{n}-", dir=tmp))
        (folder / "in").mkdir(parents=True)
        notebooks = []
        for i in range(n):
            notebooks.append(folder / "in" / f"student{i:06}.ipynb")
            notebooks[-1].write_text(str(i))
        start = time.perf_counter()
        grade_into(SimpleNamespace(config=config), notebooks, folder / "out", GradeSettings(executor="instant"))
        full[n] = time.perf_counter() - start

        results = [synthetic(config, i) for i in range(n)]
        start = time.perf_counter()
        records = Records(folder / "bare")
        book = Gradebook(folder / "bare", config, [])
        for result in results:
            records.add(result, "0" * 64)
            book.add(result)
        book.close(records.results())
        records.close()
        bare[n] = time.perf_counter() - start
        if n not in counts:
            continue
        print(f"  {n:6} results: {full[n]:6.2f} s for the whole bookkeeping ({full[n] / n * 1000:.2f} ms per result: "
              f"record, gradebook row, results JSON and feedback files, final gradebook); records and gradebook "
              f"alone {bare[n]:.2f} s ({bare[n] / n * 1000:.2f} ms per result)")
    low, high = min(counts), max(counts)
    if low != high:
        print(f"  growth from {low} to {high} results ({high / low:.0f}x): whole bookkeeping "
              f"{full[high] / full[low]:.1f}x, records and gradebook alone {bare[high] / bare[low]:.1f}x "
              f"(linear: {high / low:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--skip-throughput", action="store_true", help="only the recording figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recording(sorted(args.results), Path(tmp))  # first: no workers of the throughput runs still exiting
        if not args.skip_throughput:
            throughput(args.notebooks, args.jobs, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
