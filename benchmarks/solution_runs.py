"""Each assignment's solution notebook: its CPU time and what its models reach against the thresholds.

Builds every assignment (without the proof runs), grades its solution notebook once, and
prints the notebook's own cell time, the total grading time, the score, and the messages
of the checks that measure models (accuracies, GAN scores). Run from the repository root:

    python benchmarks/solution_runs.py [--assignment NAME ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from autograder.build.bundles import build_bundles
from autograder.build.assignment import BUNDLE_SOLUTION, load_assignment
from autograder.config import GradeSettings
from autograder.cli.demo import repo_root
from autograder.grading.pipeline import grade_submission

MEASURES = ("accuracy", "inception", "entropy", "score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", nargs="*", help="default: all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the kernel (default 1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()
    root = repo_root() / "assignments"
    names = args.assignment or sorted(p.parent.name for p in root.glob("*/assignment.toml"))
    settings = GradeSettings(device=args.device, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            _, autograder = build_bundles(root / name, Path(tmp) / name)
            result = grade_submission(autograder / BUNDLE_SOLUTION, load_assignment(autograder), settings)
            print(f"{name:12s} cells {result.cell_time:6.1f} s   graded in {result.execution_time:6.1f} s   "
                  f"{result.total:g}/{result.max_total:g} {result.status}")
            for q in result.questions:
                for o in q.outcomes:
                    if not o.public and any(word in o.message for word in MEASURES):
                        print(f"    {q.id}/{o.check}: {o.message}")


if __name__ == "__main__":
    main()
