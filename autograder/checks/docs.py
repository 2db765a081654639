"""The check library's reference page, generated from its docstrings: `python -m autograder.checks.docs`.

Writes Markdown to stdout: every public name of `autograder.checks` (its `__all__`), grouped by the module that
defines it, with its signature, its docstring and one example: the first line of a shipped assignment's checks
(`assignments/*/checks/*.py`) that uses it. `docs/check-library.md` is this output; `tests/test_authoring.py`
fails when it is stale.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
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
    """name → `path:line: code`, the first use of it in a shipped assignment's checks (a call, or for a constant its
    name): the whole statement where it is short, else the call itself, else the line."""
    patterns = {n: re.compile(rf"\b{re.escape(n)}\(" if callable(obj) else rf"\b{re.escape(n)}\b")
                for n, obj in public.items()}
    found: dict[str, str] = {}
    long: dict[str, str] = {}  # the first use, where no use has a short statement or call
    for path in sorted((REPO / "assignments").glob("*/checks/*.py")):
        source = path.read_text(encoding="utf-8")
        lines, tree = source.splitlines(), ast.parse(source)
        for number, line in enumerate(lines, 1):
            code = line.strip()
            if code.startswith(("from ", "import ", "#", "def ")) or not code:
                continue
            for name, pattern in patterns.items():
                if name not in found and pattern.search(code):
                    where = f"{path.relative_to(REPO).as_posix()}:{number}: "
                    short = example(source, tree, number, name)
                    if short is not None:
                        found[name] = where + short
                    else:
                        long.setdefault(name, where + shortened_call(tree, number, name, code))
    return {**long, **found}


def example(source: str, tree: ast.Module, number: int, name: str, most: int = 8) -> str | None:
    """The code of line `number` that uses `name`: its innermost statement, or the call of `name` starting on that
    line, whichever has at most `most` lines first; None if neither has."""
    def span(node: ast.AST) -> int:
        return node.end_lineno - node.lineno + 1

    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and not isinstance(
        n, (ast.FunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With, ast.Try))
                  and n.lineno <= number <= n.end_lineno]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == number
             and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]
    for node in sorted(statements, key=span)[:1] + sorted(calls, key=span)[:1]:
        if span(node) <= most:
            return textwrap.dedent(" " * node.col_offset + ast.get_source_segment(source, node))
    return None


def shortened_call(tree: ast.Module, number: int, name: str, line: str) -> str:
    """The call of `name` on line `number`, each argument that spans lines shown as `...`; else `line`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno == number and name in (
                getattr(node.func, "id", None), getattr(node.func, "attr", None)):
            def brief(arg: ast.AST) -> ast.AST:
                return ast.Constant(...) if arg.end_lineno > arg.lineno else arg

            return ast.unparse(ast.Call(node.func, [brief(a) for a in node.args],
                                        [ast.keyword(k.arg, brief(k.value)) for k in node.keywords]))
    return line


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
