"""The import rules of the source tree, read from the code itself (every import statement, also those
inside functions and under TYPE_CHECKING, and every string that names a project module, which is how a
module is reached through importlib, `python -m` or gunicorn), so a rule broken in one line fails here,
not in a wheel."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where each top-level folder installs (pyproject's package-dir).
PACKAGES = {"src/ttsload": "ttsload", "bench": "ttsload.bench", "strategies": "ttsload.strategies",
            "reports": "ttsload.reports", "scenarios": "ttsload.scenarios"}
OLD_NAMES = {"bench", "strategies", "reports", "scenarios"}  # top-level import names before the namespace
# Code that runs inside a measured cell process (or the server it starts) may import only these.
CELL_SIDE = ("ttsload.bench.cell", "ttsload.bench.serving")
CELL_SIDE_MAY_IMPORT = ("ttsload.bench.cell", "ttsload.bench.serving", "ttsload.bench.plan", "ttsload.bench.procs",
                        "ttsload.bench.cellspec", "ttsload.bench.drive",
                        "ttsload.bench.http_limits",
                        # the http cell's load generator is the client's sender, timed with the one streaming metric
                        "ttsload.bench.analysis.streaming", "ttsload.bench.loadgen.audio", "ttsload.bench.loadgen.api",
                        "ttsload.bench.loadgen.schedule", "ttsload.bench.loadgen.sender",
                        "ttsload.bench.errors", "ttsload.strategies")
# Reports read result files: they may use the analysis and the shared types, never the harness's moving parts.
REPORTS_MAY_IMPORT = ("ttsload.reports", "ttsload.bench.analysis", "ttsload.bench.cells", "ttsload.bench.plan",
                      "ttsload.strategies.events",
                      "ttsload.bench.results", "ttsload.bench.errors", "ttsload.strategies.base")


def modules() -> dict[str, Path]:
    """Every installed module of the project by its import name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


MODULES = modules()


# Layers, top to bottom: a module imports its own layer or lower ones, never a higher one (docs/architecture.md).
# A module belongs to the layer of the longest prefix naming it ("ttsload.bench" holds the shared types:
# cells, plan, cellspec, drive, http_limits, procs, errors, results' atomic writes, ...).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("ttsload.cli", "ttsload.__main__")),
    ("reports", ("ttsload.reports",)),
    ("runs", ("ttsload.bench.harness", "ttsload.bench.profiling", "ttsload.bench.loadgen.measure",
              "ttsload.bench.scenario")),
    ("cell process", ("ttsload.bench.cell",)),
    ("servers and load", ("ttsload.bench.serving", "ttsload.bench.loadgen")),
    ("records", ("ttsload.bench.regression", "ttsload.bench.results", "ttsload.bench.merging", "ttsload.bench.sharding",
                 "ttsload.bench.artefacts", "ttsload.bench.planid", "ttsload.bench.models",
                 "ttsload.bench.scenario.corpus")),
    ("analysis", ("ttsload.bench.analysis",)),
    ("shared types", ("ttsload.bench",)),
    ("strategies", ("ttsload.strategies",)),
    ("namespace", ("ttsload", "ttsload.scenarios")),
)


def layer_of(module: str) -> int:
    """The index of a module's layer in LAYERS (0: the top)."""
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS"
    return best[1]


DISPATCH = re.compile(r"(?P<module>ttsload(\.\w+)+)(:[\w.()]*)?")  # a module, maybe with ":attr" (gunicorn's app)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of a tree (they name modules to explain, not to reach them)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def named_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """(module, line) for every string literal naming a project module, "ttsload.x.y" or "ttsload.x.y:attr":
    a dispatch by string (importlib, `python -m`, gunicorn's app) is an import the statements do not show."""
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if (found := DISPATCH.fullmatch(node.value)) and found["module"] in MODULES:
                out.append((found["module"], node.lineno))
    return out


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement of a file, resolved to the project's modules, and for
    every string that names a module (named_modules)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                submodule = f"{base}.{alias.name}"
                out.append((submodule if submodule in MODULES else base, node.lineno))
    return out + named_modules(tree)


GRAPH = {module: imports_of(path, module) for module, path in MODULES.items()}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_old_top_level_names() -> None:
    """bench, strategies and reports exist only as ttsload.*: an old name imports in the repo, fails in the wheel."""
    files = [*MODULES.values(), *sorted((ROOT / "tests").rglob("*.py")), ROOT / "noxfile.py"]
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in files
           for name, line in imports_of(path, "tests.x") if name.split(".")[0] in OLD_NAMES]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, CELL_SIDE)])
def test_cell_side_imports_no_analysis_reports_or_harness(module: str) -> None:
    bad = [f"{name} (line {line})" for name, line in GRAPH[module]
           if name.startswith("ttsload") and not _within(name, CELL_SIDE_MAY_IMPORT)]
    assert not bad, f"{module} runs inside a cell process but imports {', '.join(bad)}"


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, ("ttsload.strategies",))])
def test_strategies_import_no_measurement_code(module: str) -> None:
    bad = [f"{name} (line {line})" for name, line in GRAPH[module]
           if _within(name, ("ttsload.bench", "ttsload.reports"))]
    assert not bad, f"{module} is a strategy module but imports {', '.join(bad)}"


@pytest.mark.parametrize("module", [m for m in MODULES if _within(m, ("ttsload.reports",))])
def test_reports_read_results_not_the_harness(module: str) -> None:
    bad = [f"{name} (line {line})" for name, line in GRAPH[module]
           if name.startswith("ttsload") and not _within(name, REPORTS_MAY_IMPORT)]
    assert not bad, f"{module} builds reports from result files but imports {', '.join(bad)}"


def upward(module: str, deps: list[tuple[str, int]]) -> list[str]:
    """The imports of `module` that reach a higher layer than its own."""
    own = layer_of(module)
    return [f"{name} (line {line}, layer {LAYERS[layer_of(name)][0]})" for name, line in deps
            if name in MODULES and layer_of(name) < own]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    bad = upward(module, GRAPH[module])
    assert not bad, f"{module} (layer {LAYERS[layer_of(module)][0]}) imports upward: {', '.join(bad)}"


def test_a_string_dispatch_is_an_edge(tmp_path: Path) -> None:
    """A module reached by name (importlib, `python -m`) is an import for every rule here, cycles included."""
    planted = tmp_path / "planted.py"
    planted.write_text('"""Docstrings may name ttsload.bench.harness.runner freely."""\n'
                       'import importlib\n'
                       'RUN = importlib.import_module("ttsload.bench.harness.runner")\n'
                       'COMMAND = ["python", "-m", "ttsload.reports.build"]\n'
                       'KIND = "ttsload.bench.cell.pool_kind:run_pool"\n')
    deps = imports_of(planted, "ttsload.strategies.planted")
    assert sorted((line, n) for n, line in deps if n.startswith("ttsload")) == [
        (3, "ttsload.bench.harness.runner"), (4, "ttsload.reports.build"), (5, "ttsload.bench.cell.pool_kind")]
    assert len(upward("ttsload.strategies.planted", deps)) == 3


def test_the_layers_cover_every_module() -> None:
    assert {m: layer_of(m) for m in MODULES}  # layer_of names a module no layer holds


def test_no_import_cycles() -> None:
    """Depth-first search over every import edge between the project's modules; a cycle is printed whole."""
    edges = {m: sorted({name for name, _ in deps if name in MODULES and name != m}) for m, deps in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in edges[module]:
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in edges:
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_rules_see_the_code() -> None:
    """Guards the test itself: it found the modules and the imports it judges."""
    assert {"ttsload.bench.cell.entry", "ttsload.strategies.base", "ttsload.reports.build"} <= set(MODULES)
    entry = {name for name, _ in GRAPH["ttsload.bench.cell.entry"]}
    kinds = {name for name, _ in GRAPH["ttsload.bench.cell.kinds"]}
    assert {"ttsload.bench.cell.http_kind", "ttsload.bench.cell.pool_kind"} <= kinds
    assert "ttsload.bench.cell" in {n for n, _ in GRAPH["ttsload.bench.harness.runner"]}  # CELL_MODULE, by name
    assert {"ttsload.bench.cellspec", "ttsload.strategies.base"} <= entry


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject lists packages one by one (package-dir mapping): a new folder missing there works in the
    repo and is absent from the wheel, so every package found here must be listed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert packages - listed == set(), f"add to pyproject's [tool.setuptools] packages: {sorted(packages - listed)}"
