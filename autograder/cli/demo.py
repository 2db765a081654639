"""`torchgrade demo`: build an assignment shipped in the repository and grade its examples."""

from __future__ import annotations

from pathlib import Path

from ..build.assignment import BLANK_NAME, BUNDLE_SOLUTION
from ..grading.proof import assign
from ..config import GradeSettings
from ..errors import ConfigError

EXAMPLES_DIR = "examples"


def repo_root() -> Path:
    """The checkout holding `assignments/`: the current folder or a parent, else the package's parent."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents, Path(__file__).resolve().parent.parent):
        if (candidate / "assignments").is_dir() and (candidate / "reference").is_dir():
            return candidate
    raise ConfigError("the demo needs a torchgrade checkout (assignments/ and reference/): run it from the "
                      "repository, or install with `pip install -e .`")


def example_submissions(autograder: Path, source: Path) -> list[Path]:
    examples = sorted((source / EXAMPLES_DIR).glob("*.ipynb"))
    return [autograder / BUNDLE_SOLUTION, autograder / BLANK_NAME, *examples]


def run_demo(name: str, out: Path, jobs: int) -> None:
    from rich.markup import escape

    from ..build.assignment import load_assignment
    from .run_batch import run_batch
    from ..kernel.isolation import trusted_isolation
    from ..report.terminal import console

    source = repo_root() / "assignments" / name
    if not source.is_dir():
        known = sorted(p.name for p in (repo_root() / "assignments").iterdir() if p.is_dir())
        raise ConfigError(f"no assignment {name!r}; known: {', '.join(known)}", source)
    dist, grades = out / "dist" / name, out / "grades" / name
    console.print(f"[bold]1. torchgrade assign {escape(str(source))} --out {escape(str(dist))}[/]")
    isolation = trusted_isolation()
    if isolation == "none":
        console.print("[yellow]this host cannot run sandboxes (bubblewrap or user namespaces are missing): the demo "
                      "grades its own examples without isolation; `torchgrade grade` would refuse[/]")
    report = assign(source, dist, GradeSettings(isolation=isolation))
    console.print(f"   solution {report.solution.total:g}/{report.solution.max_total:g}, blank "
                  f"{report.blank.total:g}, built in {report.seconds:.1f} s")
    bundle = load_assignment(report.autograder_dir)
    submissions = example_submissions(report.autograder_dir, source)
    console.print(f"[bold]2. torchgrade grade {escape(str(report.autograder_dir))} <{len(submissions)} examples> "
                  f"--out {escape(str(grades))}[/]")
    run_batch(bundle, submissions, grades, GradeSettings(device="cpu", jobs=jobs, force=True, isolation=isolation))
    notebook = report.student_dir / bundle.config.notebook
    console.print(f"student bundle: {report.student_dir}\n  open the student notebook in Jupyter "
                  f"(pip install notebook): jupyter notebook {notebook}", markup=False)
