"""The check library's reference page, generated from its docstrings: `python -m autograder.checks.docs`.

Writes Markdown to stdout: every public name of `autograder.checks` (its `__all__`), grouped by the module that
defines it, with its signature, its docstring and one example: the first line of a shipped assignment's checks
(`assignments/*/checks/*.py`) that uses it. `docs/check-library.md` is this output; `tests/test_authoring.py`
fails when it is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from .. import checks
from . import figures

REPO = Path(__file__).resolve().parents[2]
HEADER = """\
# The check library: reference

Generated from the docstrings by `python -m autograder.checks.docs > docs/check-library.md`; do not edit by hand
(`tests/test_authoring.py` fails when this page is stale). Everything here is imported from `autograder.checks`, but
the feedback figures' names, from `autograder.checks.figures`. How checks and figures are written:
[authoring.md](authoring.md). Examples are lines of the shipped assignments' checks.
"""


def usage_examples(public: dict[str, object]) -> dict[str, str]:
    """name → `path:line: code`, the first line of a shipped assignment's checks that calls it (or, for a constant,
    names it)."""
    patterns = {n: re.compile(rf"\b{re.escape(n)}\(" if callable(obj) else rf"\b{re.escape(n)}\b")
                for n, obj in public.items()}
    found: dict[str, str] = {}
    for path in sorted((REPO / "assignments").glob("*/checks/*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            code = line.strip()
            if code.startswith(("from ", "import ", "#", "def ")) or not code:
                continue
            for name, pattern in patterns.items():
                if name not in found and pattern.search(code):
                    found[name] = f"{path.relative_to(REPO).as_posix()}:{number}: {whole_statement(lines, number)}"
    return found


def whole_statement(lines: list[str], number: int, most: int = 8) -> str:
    """Line `number` (1-based) and those continuing it while its brackets are open (at most `most` lines)."""
    taken = [lines[number - 1].strip()]
    depth = sum(taken[0].count(o) - taken[0].count(c) for o, c in ("()", "[]", "{}"))
    indent = len(lines[number - 1]) - len(lines[number - 1].lstrip())
    for line in lines[number:number - 1 + most]:
        if depth <= 0:
            break
        taken.append(line[indent:].rstrip())
        depth += sum(line.count(o) - line.count(c) for o, c in ("()", "[]", "{}"))
    return "\n".join(taken)


def signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def kind(obj: object) -> str:
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "constant"


def home(obj: object) -> str:
    """The module that defines `obj`, as a section name."""
    module = getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None
    return module if module and module.startswith("autograder.") else "autograder.checks"


def entry(name: str, obj: object, examples: dict[str, str]) -> list[str]:
    lines = [f"### `{name}`", ""]
    if kind(obj) == "constant":
        lines += [f"constant: `{name} = {obj!r}`"[:300], ""]
    else:
        lines += ["```python", f"{'class ' if kind(obj) == 'class' else ''}{name}{signature(obj)}", "```", ""]
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj) and not obj.__dict__.get("__doc__"):  # not one inherited from `Protocol` or `type`
            doc = ""
        lines += [doc or "(no docstring)", ""]
    if name in examples:
        lines += ["Example:", "", "```python", f"# {examples[name].split(': ', 1)[0]}",
                  examples[name].split(": ", 1)[1], "```", ""]
    return lines


def render() -> str:
    public = {name: getattr(module, name) for module in (checks, figures) for name in module.__all__}
    examples = usage_examples(public)
    sections: dict[str, list[str]] = {}
    for name in sorted(public, key=str.lower):
        sections.setdefault(home(public[name]), []).append(name)
    lines = [HEADER]
    lines += ["| module | names |", "|---|---|"]
    lines += [f"| `{module}` | {', '.join(f'`{n}`' for n in names)} |" for module, names in sorted(sections.items())]
    lines.append("")
    for module, names in sorted(sections.items()):
        lines += [f"## `{module}`", ""]
        for name in names:
            lines += entry(name, public[name], examples)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
