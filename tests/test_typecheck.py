"""The type check of `nox -s lint` sees the code under the names it is installed by.

pyproject's package-dir maps bench/ to `ttsload.bench` (and so on); tests/typecheck.py lays that out as
links for mypy. A type error planted in a strict module of a small project with this repository's
pyproject.toml must fail the check and be reported at the folder's own path: a checker blinded by the
mapping would find nothing and pass.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import tomllib

pytest.importorskip("mypy")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import typecheck  # noqa: E402  (a developer script beside the tests, not a package module)

PLANTED = "def planted(n: int) -> str:\n    return n  # the plant: an int where a str is promised\n"


def small_project(root: Path, plan: str) -> Path:
    """This repository's pyproject.toml over an empty file for each strict module (an empty package for each
    strict package), and a bench/plan.py holding `plan`."""
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in folders.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "__init__.py").write_text("")
    for selection in typecheck.strict_modules(ROOT):
        name = selection.split("=", 1)[1]
        top = max((n for n in folders if name == n or name.startswith(n + ".")), key=len)
        path = root / folders[top] / name.removeprefix(top).lstrip(".").replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if selection.startswith("--package="):
            path.mkdir(exist_ok=True)
            (path / "__init__.py").write_text("")
        else:
            path.with_suffix(".py").write_text("")
    (root / "bench" / "plan.py").write_text(plan)
    return root


def test_a_planted_type_error_in_a_strict_module_fails_the_check(tmp_path):
    project = small_project(tmp_path / "project", PLANTED)
    result = typecheck.run(project, tmp_path / "tree")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ttsload/bench/plan.py:2: error: Incompatible return value type" in result.stdout, result.stdout


def test_strictness_reaches_the_mapped_modules(tmp_path):
    """An unannotated function is an error only under strict: the override reaches `ttsload.bench.plan`."""
    project = small_project(tmp_path / "project", "def untyped(n):\n    return n\n")
    result = typecheck.run(project, tmp_path / "tree")
    assert "ttsload/bench/plan.py:1: error: Function is missing a type annotation" in result.stdout, result.stdout


def test_errors_name_the_repository_folder_not_the_link():
    tree = ".mypy_cache/installed-layout/ttsload/"
    text = f"{tree}bench/plan.py:3: error: x\n{tree}cli/run.py:1: error: y\n{tree}strategies/base.py:2: note: z\n"
    assert typecheck.unlink_paths(text, tree).splitlines() == [
        "bench/plan.py:3: error: x", "src/ttsload/cli/run.py:1: error: y", "strategies/base.py:2: note: z"]


# Half of the 213 parameters annotated `Any` on main when #23 halved them (100 right after): a new parameter
# whose type is known gets that type (a Protocol, a TypedDict, a dataclass), not Any.
ANY_CEILING = 106


def test_parameters_typed_any_stay_at_most_half_of_what_they_were():
    import any_params

    found = any_params.count()
    total = sum(len(params) for params in found.values())
    assert total <= ANY_CEILING, (f"{total} parameters are annotated Any (at most {ANY_CEILING}): "
                                  "`python tests/any_params.py --list` names them")
