"""Count the function parameters annotated `Any` in the installed code (bench/, strategies/, reports/, src/).

A parameter typed `Any` is one the type checker cannot follow; issue #23 set out to halve them. Run
`python tests/any_params.py` for the total and the count per file (`--list` names each parameter);
`nox -s lint` prints the total. Only a bare `Any` (or `typing.Any`) counts: `dict[str, Any]` says what the
container is, and `*args: Any`/`**kwargs: Any` count like any other parameter.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("bench", "strategies", "reports", "src")


def is_any(annotation: ast.expr | None) -> bool:
    """True for `Any`, `typing.Any` and the string form `"Any"`."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value.strip() in ("Any", "typing.Any")
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    return isinstance(annotation, ast.Attribute) and annotation.attr == "Any"


def any_params(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, function, parameter) of each parameter of each function in `path` annotated `Any`."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p)]
            for param in params:
                if is_any(param.annotation):
                    yield param.lineno, node.name, param.arg


def count(root: Path = ROOT) -> dict[Path, list[tuple[int, str, str]]]:
    """Per file (relative to `root`) with at least one, its parameters annotated `Any`."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            params = list(any_params(path))
            if params:
                found[path.relative_to(root)] = params
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="name every parameter, not just the count per file")
    parser.add_argument("--total", action="store_true", help="print only the total")
    args = parser.parse_args(argv)
    found = count()
    total = sum(len(params) for params in found.values())
    if not args.total:
        for path, params in sorted(found.items(), key=lambda item: -len(item[1])):
            print(f"{len(params):4d}  {path}")
            for line, function, name in params if args.list else []:
                print(f"        {path}:{line} {function}({name})")
    print(total if args.total else f"{total} parameters annotated Any in {len(found)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
