"""Type-check ttsload as it is installed: `python tests/typecheck.py` (what `nox -s lint` runs).

pyproject.toml maps top-level folders into one namespace (`ttsload.bench` is bench/, `ttsload.strategies`
is strategies/, ...), and the editable install resolves that mapping with an import hook, which a type
checker does not run. Pointed at the repository, mypy would see a package `bench` that nothing imports
and resolve every `from ttsload.bench ...` to nothing. So this builds the installed layout as a tree of
symbolic links (TREE/ttsload/bench -> bench/, ...) from the same `package-dir` table setuptools reads,
and runs mypy on it by module name: the code checked is the code in the folders, under the names it is
imported by.

The modules checked are the ones [[tool.mypy.overrides]] in pyproject.toml makes strict (`x.*` is the
package x and everything in it); what they import is read for its types but not reported on
(`follow_imports = "silent"`). Arguments after the script's own go to mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".mypy_cache" / "installed-layout"  # fixed, so mypy's incremental cache stays valid


def link_tree(root: Path, tree: Path) -> Path:
    """Build (or refresh) the installed layout of the project at `root` under `tree`; returns `tree`.

    Each package of `package-dir` is a link to its folder; a package nested in another's folder
    (ttsload.bench inside src/ttsload's namespace) is a link inside a real directory that mirrors
    the outer folder's entries, because the outer folder itself must not be written to.
    """
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    nested = {name for name in mapping if any(other.startswith(name + ".") for other in mapping)}
    for name in sorted(mapping, key=lambda n: n.count(".")):
        target = tree.joinpath(*name.split("."))
        source = root / mapping[name]
        if name in nested:  # a real directory: its own entries linked, the nested packages added below
            target.mkdir(parents=True, exist_ok=True)
            for entry in source.iterdir():
                relink(target / entry.name, entry)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            relink(target, source)
    return tree


def relink(link: Path, source: Path) -> None:
    """`link` -> `source`, replacing whatever link was there."""
    if link.is_symlink():
        link.unlink()
    link.symlink_to(source.resolve(), target_is_directory=source.is_dir())


def strict_modules(root: Path) -> list[str]:
    """mypy's selection of the strict modules: `--package=PACKAGE` for `PACKAGE.*`, `--module=MODULE` otherwise
    (one argument each: `-m ttsload...` would read as starting ttsload to the unit tier's guard)."""
    overrides = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    modules = [m for o in overrides if o.get("strict") for m in ([o["module"]] if isinstance(o["module"], str)
                                                                 else o["module"])]
    return [f"--package={m[:-2]}" if m.endswith(".*") else f"--module={m}" for m in modules]


def run(root: Path = ROOT, tree: Path = TREE, extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """mypy over the strict modules of the project at `root`, its layout built under `tree`."""
    link_tree(root, tree)
    command = [sys.executable, "-m", "mypy", "--config-file", str(root / "pyproject.toml"),
               "--cache-dir", str(tree.parent / "cache"), *strict_modules(root), *(extra or [])]
    env = {**os.environ, "MYPYPATH": str(tree)}
    return subprocess.run(command, cwd=root, env=env, text=True, capture_output=True, check=False)


def main() -> int:
    result = run(extra=sys.argv[1:])
    tree = os.path.relpath(TREE / "ttsload", ROOT) + os.sep  # mypy names files relative to its working folder
    # Errors name the tree's links; the folder the developer edits is easier to click on.
    for stream, text in ((sys.stdout, result.stdout), (sys.stderr, result.stderr)):
        stream.write(unlink_paths(text, tree))
    return result.returncode


def unlink_paths(text: str, tree: str) -> str:
    """mypy's output with paths in the link tree replaced by the repository paths they link to."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    prefixes = sorted(((name.removeprefix("ttsload").lstrip(".").replace(".", "/"), folder)
                       for name, folder in mapping.items()), key=lambda p: -len(p[0]))
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(tree):
            rest = line[len(tree):]
            for inside, folder in prefixes:
                if not inside or rest.startswith(inside + "/"):
                    line = f"{folder}/{rest[len(inside):].lstrip('/')}"
                    break
        out.append(line)
    return "".join(out)


if __name__ == "__main__":
    sys.exit(main())
