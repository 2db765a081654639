"""The cost of the similarity section of the instructor report, for N = 100 and 500 submissions, in one run.

Synthetic submissions are made from an assignment's solution and its example notebooks (the master
notebook's solution, `examples/*.ipynb`), each perturbed as students who share code do: local variables
renamed, helper cells reordered, comments removed or added; some also get a few lines of their own (a debug
print, an extra assert, a helper with other constants), so that not every pair is the same code. They are
written as notebooks and compared as the report does (`submissions_similarity`: read, drop the template's
cells, fingerprint, compare the pairs that share a fingerprint).

Per N: the similarity as the report runs it (passages found in more than max(10, N/10) submissions are
ignored); the worst case with that filter off (every pair that shares anything compared in full; here nearly
all pairs, since every submission comes from the same solution); and the whole `report.html` (records of N
synthetic results with those notebooks: histograms, diagnoses, similarity, side-by-side pages). No kernel
runs. From the repository root:

    python benchmarks/similarity.py [--sizes 100 500] [--assignment convolution] [--seed 0]
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.checks import Outcome
from autograder.build.notebook import Master
from autograder.report.instructor import write_report
from autograder.report.records import Records
from autograder.report.similarity import submissions_similarity
from autograder.outcomes import QuestionScore, SubmissionResult

REPO = Path(__file__).resolve().parent.parent


def local_names(source: str) -> set[str]:
    """Names assigned inside functions (not parameters, not the functions themselves): safe to rename."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def rename(source: str, rng: random.Random) -> str:
    for name in sorted(local_names(source)):
        if rng.random() < 0.7:
            new = rng.choice(["tmp", "val", "my", "res", "acc", "idx", "q"]) + f"_{name}{rng.randint(0, 99)}"
            source = re.sub(rf"\b{re.escape(name)}\b", new, source)
    return source


COMMENTS = ["# my implementation", "# TODO: clean up", "# loop over the output positions", "# see lecture 4",
            "# works on the examples", "# careful with the shapes here"]


def recomment(source: str, rng: random.Random) -> str:
    lines = [line for line in source.split("\n") if not line.strip().startswith("#") or rng.random() < 0.3]
    out = []
    for line in lines:
        if rng.random() < 0.15:
            out.append(line[: len(line) - len(line.lstrip())] + rng.choice(COMMENTS))
        out.append(line)
    return "\n".join(out)


def own_lines(rng: random.Random) -> str:
    """A few lines of the student's own: different constants and shapes, so not every pair is identical."""
    a, b, c = rng.randint(2, 64), rng.randint(1, 9), rng.randint(3, 300)
    options = [
        f"def check_shapes_{a}(t):\n    assert t.dim() == {b % 4 + 1}, t.shape\n    return t.reshape({a}, -1)[:{c}]",
        f"x_test = torch.randn({b}, {a % 5 + 1}, {c % 17 + 3}, {c % 13 + 3})\nprint(x_test.shape, x_test.mean() * {a})",
        f"for trial in range({b}):\n    scale = {a} / (trial + {c})\n    print(trial, scale, scale ** {b % 3 + 1})",
        f"def normalise_{c}(img):\n    lo, hi = img.min(), img.max()\n    return (img - lo) / (hi - lo + 1e-{b})",
    ]
    return "\n".join(rng.sample(options, rng.randint(1, 3)))


def perturb(nb: nbformat.NotebookNode, template: set[str], rng: random.Random) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    answers = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip() not in template]
    for i in answers:
        nb.cells[i].source = recomment(rename(nb.cells[i].source, rng), rng)
    helpers = [i for i in answers if nb.cells[i].source.lstrip().startswith(("def ", "#"))]
    order = helpers[:]
    rng.shuffle(order)  # helpers reordered
    sources = [nb.cells[i].source for i in order]
    for i, source in zip(helpers, sources):
        nb.cells[i].source = source
    if rng.random() < 0.8:
        nb.cells.append(nbformat.v4.new_code_cell(own_lines(rng)))
    return nb


def synthetic(assignment: str, n: int, folder: Path, seed: int) -> tuple[dict[str, Path], Path]:
    source = REPO / "assignments" / assignment
    master = Master.read(next(p for p in source.glob("*.ipynb")))
    blank = folder / "blank.ipynb"
    nbformat.write(master.student(), blank)
    examples = sorted((source / "examples").glob("*.ipynb"))
    bases = [master.solution()] + [nbformat.read(p, as_version=4) for p in examples]
    template = {c.source.strip() for c in master.student().cells if c.cell_type == "code"}
    rng = random.Random(seed)
    paths = {}
    for k in range(n):
        path = folder / f"student_{k:04d}.ipynb"
        nbformat.write(perturb(bases[k % len(bases)], template, rng), path)
        paths[path.stem] = path
    return paths, blank


def timed(fn, *args, **kwargs) -> tuple[str, object]:
    """`fn`'s result, and its cost as `wall s (cpu s)`: CPU time too, since a shared machine stretches wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return f"{time.perf_counter() - wall:.2f} s ({time.process_time() - cpu:.2f})", result


def records_of(paths: dict[str, Path], out: Path, seed: int) -> None:
    """A synthetic result per notebook: random points, some failing checks with varying numbers, a few flags."""
    rng = random.Random(seed)
    records = Records(out)
    try:
        for name, path in paths.items():
            questions = []
            for qid, points in (("conv2d_single", 5), ("conv2d", 8), ("max_pool2d", 4), ("sobel", 4)):
                got = rng.choice([0, points / 2, points, points])
                status = "passed" if got == points else "failed"
                message = f"max |difference| {rng.random():.3f} at ({rng.randint(0, 9)}, {rng.randint(0, 9)})"
                hint = "" if status == "passed" else rng.choice(["", "The kernel is flipped.", "Off by one."])
                questions.append(QuestionScore(qid, got, points, [
                    Outcome(f"{qid}_random", qid, False, 1.0, got / points, message, hint, 0.01, status)]))
            flags = ([{"kind": "processes", "origin": "kernel", "detail": "left a process"}]
                     if rng.random() < 0.02 else [])
            records.add(SubmissionResult(name, "ok", questions, path=str(path), execution_time=rng.uniform(2, 30),
                                         flags=flags), "digest")
    finally:
        records.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--assignment", default="convolution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="torchgrade-similarity-") as tmp:
        for n in args.sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            paths, blank = synthetic(args.assignment, n, folder, args.seed)
            report_cost, report = timed(submissions_similarity, paths, blank)
            worst_cost, worst = timed(submissions_similarity, paths, blank, common=0)
            records_of(paths, folder / "out", args.seed)
            whole_cost, _ = timed(write_report, folder / "out", blank, args.assignment)
            rows.append((n, report_cost, report.compared, len(report.pairs), worst_cost, worst.compared,
                         len(worst.pairs), whole_cost))
    print(f"synthetic {args.assignment} submissions: similarity (read, fingerprint, compare) and the whole report; "
          "wall seconds (CPU seconds)")
    print(f"{'N':>5}  {'as in the report':>18} {'compared':>9} {'listed':>7}   {'no common filter':>18} "
          f"{'compared':>9} {'listed':>7}   {'report.html':>18}")
    for n, cost, compared, listed, worst_cost, worst_compared, worst_listed, whole_cost in rows:
        print(f"{n:>5}  {cost:>18} {compared:>9} {listed:>7}   {worst_cost:>18} {worst_compared:>9} {worst_listed:>7}"
              f"   {whole_cost:>18}")

if __name__ == "__main__":
    main()
