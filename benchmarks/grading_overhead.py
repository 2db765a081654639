"""Per-submission grading overhead and batch wall time with --jobs 1 and --jobs 2.

Overhead = the time to grade a submission minus the time its own cells ran: kernel start
and stop, seeding, probes and checks. Run from the repository root:

    python benchmarks/grading_overhead.py [--assignment convolution] [--jobs 1 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autograder.assign import assign
from autograder.assignment import load_assignment
from autograder.batch import grade_batch
from autograder.config import GradeSettings
from autograder.demo import example_submissions, repo_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="convolution")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = repo_root() / "assignments" / args.assignment
        start = time.perf_counter()
        report = assign(source, tmp / "dist", GradeSettings(device=args.device))
        print(f"assign {args.assignment}: {time.perf_counter() - start:.1f} s (builds, records, grades solution and blank)")
        bundle = load_assignment(report.autograder_dir)
        submissions = example_submissions(report.autograder_dir, source)
        for jobs in args.jobs:
            start = time.perf_counter()
            batch = grade_batch(bundle, submissions, tmp / f"jobs{jobs}", GradeSettings(device=args.device, jobs=jobs))
            wall = time.perf_counter() - start
            overhead = [r.execution_time - r.cell_time for r in batch.graded]
            cells = [r.cell_time for r in batch.graded]
            print(f"--jobs {jobs}: {len(submissions)} submissions in {wall:.1f} s wall "
                  f"({wall / len(submissions):.2f} s per submission)")
            print(f"   per submission: grading {statistics.mean(r.execution_time for r in batch.graded):.2f} s, "
                  f"own cells {statistics.mean(cells):.2f} s, overhead mean {statistics.mean(overhead):.2f} s "
                  f"(median {statistics.median(overhead):.2f}, max {max(overhead):.2f})")


if __name__ == "__main__":
    main()
