"""The two sides of an A/B gate: what runs each side's cells (interpreter, tree, model) and how it is built.

A side is one of:
- a model folder (a directory): the current interpreter runs the cells, with that folder as every cell's model;
- an environment (a python interpreter with ttsload installed): that interpreter runs the cells;
- a git ref of the project: its tree is exported (`git archive`, so the shared repository gains no worktree
  or ref) and installed into a venv of its own. Both are cached under the key commit + lock, so a second
  A/B run against the same base builds nothing.

Installing torch per side would cost minutes, so when the ref's dependencies (constraints.txt and
pyproject.toml's dependency lists) equal the current tree's, its venv is layered on the current
environment's site-packages (a .pth that adds them after the venv's own) and only ttsload itself is
installed, without dependencies. Otherwise the venv gets the ref's own locked dependencies, which is slow
but is what a change of dependencies has to be measured with.

Anything that goes wrong while resolving or building a side raises SideError with one line: the gate then
exits "could not judge", never "pass".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

LOCK = "constraints.txt"
STAMP = ".ttsload-ab-installed"
STAMP_FORMAT = "doctor-fixed"  # what a cached venv went through: one stamped before the doctor step is rebuilt
INSTALL_TIMEOUT_S = 3600.0  # an unlayered side installs torch: minutes, not hours

Run = Callable[..., "subprocess.CompletedProcess[str]"]


class SideError(Exception):
    """A side that cannot be resolved or built; str() is the one line the gate prints."""


@dataclass(frozen=True)
class Side:
    """How one side's cells are run: `python -P -m ttsload run ...` in `cwd`, with `env` added."""

    label: str  # "A" (base) or "B" (head)
    spec: str  # what the user named
    kind: str  # "ref" | "model" | "env"
    python: Path
    cwd: Path
    model: Path | None = None  # a model-folder side: this folder replaces every cell's model
    commit: str | None = None
    layered: bool = False  # a ref side whose venv reuses the current environment's packages
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "ref":
            how = "layered on this environment's packages" if self.layered else "with its own locked packages"
            return f"side {self.label}: git {self.spec} ({(self.commit or '?')[:12]}), venv {how}"
        if self.kind == "model":
            return f"side {self.label}: model folder {self.model}, run by {self.python}"
        return f"side {self.label}: environment {self.python}"


def _run(command: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs)
    return done


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The line that says what went wrong: pip's first error other than its own wrappers, else the last line."""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and "subprocess-exited-with-error" not in line
              and "see above" not in line.lower()]
    return (errors or lines or [f"exit code {done.returncode}"])[0 if errors else -1]


def repository(start: Path, run: Run = _run) -> Path:
    """The git work tree `start` is in; SideError when it is in none."""
    done = run(["git", "-C", start, "rev-parse", "--show-toplevel"])
    if done.returncode != 0:
        raise SideError(f"{start} is not inside a git repository, so no side can be a git ref")
    return Path(done.stdout.strip())


def resolve(spec: str, label: str, repo: Path | None, cache: Path, env: dict[str, str] | None = None,
            run: Run = _run) -> Side:
    """The side `spec` names, built if it is a git ref; SideError (one line) when it cannot be."""
    env = dict(env or {})
    path = Path(spec).expanduser()
    if path.is_dir():
        return Side(label, spec, "model", Path(sys.executable), Path.cwd(), model=path.resolve(), env=env)
    if path.is_file():
        if not os.access(path, os.X_OK):
            raise SideError(f"side {label}: {spec} is a file but not an executable python interpreter")
        _check_ttsload(path, label, spec, run)
        return Side(label, spec, "env", path.absolute(), Path.cwd(), env=env)
    if repo is None:
        raise SideError(f"side {label}: '{spec}' is not a folder or an interpreter, and there is no git "
                        "repository to find it in as a ref")
    done = run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"])
    if done.returncode != 0:
        raise SideError(f"side {label}: '{spec}' is neither a model folder, a python interpreter, nor a git ref "
                        f"of {repo}")
    commit = done.stdout.strip()
    tree, venv, layered = build(repo, commit, label, spec, cache, run)
    return Side(label, spec, "ref", venv / "bin" / "python", tree, commit=commit, layered=layered, env=env)


def _check_ttsload(python: Path, label: str, spec: str, run: Run) -> None:
    done = run([python, "-P", "-c", "import ttsload.bench.cell"], cwd="/")
    if done.returncode != 0:
        raise SideError(f"side {label}: {spec} cannot import ttsload's harness: {_last_line(done)}")


def _show(repo: Path, commit: str, name: str, run: Run) -> str:
    """A file of the commit's tree, '' when the commit has none."""
    done = run(["git", "-C", repo, "show", f"{commit}:{name}"])
    return done.stdout if done.returncode == 0 else ""


def dependencies(lock: str, pyproject: str) -> tuple[str, str]:
    """What decides whether two trees need the same packages: the lock, and pyproject's dependency lists."""
    try:
        project = tomllib.loads(pyproject).get("project", {})
    except tomllib.TOMLDecodeError:
        return lock, pyproject  # unreadable: compared as text, so only an identical file matches
    wanted = {"dependencies": project.get("dependencies", []),
              "optional": project.get("optional-dependencies", {})}
    return lock, repr(sorted(wanted.items()))


def cache_key(commit: str, lock: str) -> str:
    """The key of a side's cached tree and venv: the commit and its lock."""
    return hashlib.sha256(f"{commit}\n{lock}".encode()).hexdigest()[:20]


def build(repo: Path, commit: str, label: str, spec: str, cache: Path, run: Run = _run) -> tuple[Path, Path, bool]:
    """Export and install the commit (cached); returns (tree, venv, layered)."""
    lock, pyproject = _show(repo, commit, LOCK, run), _show(repo, commit, "pyproject.toml", run)
    if not pyproject:
        raise SideError(f"side {label}: git {spec} ({commit[:12]}) has no pyproject.toml: not installable")
    here = (repo / LOCK).read_text() if (repo / LOCK).is_file() else ""
    here_project = (repo / "pyproject.toml").read_text() if (repo / "pyproject.toml").is_file() else ""
    layered = dependencies(lock, pyproject) == dependencies(here, here_project)
    key = cache_key(commit, lock) + ("-layered" if layered else "")
    tree, venv = cache / "trees" / commit, cache / "venvs" / key
    stamp, stamped = venv / STAMP, f"{key} {STAMP_FORMAT}"
    if stamp.is_file() and stamp.read_text() == stamped and tree.is_dir():
        return tree, venv, layered
    _export(repo, commit, tree, label, spec, run)
    _install(tree, venv, layered, label, spec, run)
    stamp.write_text(stamped)
    return tree, venv, layered


def _export(repo: Path, commit: str, tree: Path, label: str, spec: str, run: Run) -> None:
    if tree.is_dir():
        return
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    archive = partial.with_suffix(".tar")
    done = run(["git", "-C", repo, "archive", "--format=tar", "-o", archive, commit])
    if done.returncode != 0:
        raise SideError(f"side {label}: git archive of {spec} failed: {_last_line(done)}")
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")  # our own repository's tree; the filter refuses links out
    archive.unlink()
    partial.rename(tree)  # whole or absent: a killed export is never taken for a tree


def torch_pin(lock: str) -> str | None:
    """The lock's `torch==X` line, if it pins torch."""
    return next((line.strip() for line in lock.splitlines() if line.strip().lower().startswith("torch==")), None)


def _pip(run: Run, command: list[str | Path], label: str, spec: str) -> None:
    try:
        done = run(command, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SideError(f"side {label}: installing {spec} took over {INSTALL_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        raise SideError(f"side {label}: installing {spec} failed: {_last_line(done)}")


def site_dirs() -> list[str]:
    """The current environment's package folders, in import order (a layered venv's own, then its bases)."""
    import site

    found = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    found += [p for p in site.getsitepackages() if p not in found]
    return [p for p in found if Path(p).is_dir()]


def _install(tree: Path, venv: Path, layered: bool, label: str, spec: str, run: Run) -> None:
    """A venv for the tree: layered (ttsload alone, no dependencies) or with the tree's own locked packages."""
    shutil.rmtree(venv, ignore_errors=True)
    # A layered venv gets no pip nor setuptools of its own: the venv module's bundled ones would shadow the
    # current environment's; the current interpreter's pip installs into it (`pip --python`).
    done = run([sys.executable, "-m", "venv", *(["--without-pip"] if layered else []), venv])
    if done.returncode != 0:
        raise SideError(f"side {label}: could not create a venv for {spec}: {_last_line(done)}")
    python = venv / "bin" / "python"
    command: list[str | Path]
    if layered:  # the layer is added after the install: its setuptools must not stand in for the build's own
        command = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", tree]
    else:
        pins = ["-c", str(tree / LOCK)] if (tree / LOCK).is_file() else []
        command = [python, "-m", "pip", "install", "-q", tree, *pins]
        torch = torch_pin((tree / LOCK).read_text() if (tree / LOCK).is_file() else "")
        if torch:  # first and alone, as noxfile.py does: the pinned CPU build, not a resolver's multi-GB CUDA one
            _pip(run, [python, "-m", "pip", "install", "-q", torch], label, spec)
    _pip(run, command, label, spec)
    if not layered:  # as noxfile.py's install does: PyPI's torchaudio and torchcodec need repairs beside CPU torch
        fixed = run([python, "-P", "-m", "ttsload", "doctor", "--fix"], cwd="/")
        if fixed.returncode != 0:
            raise SideError(f"side {label}: {spec}'s venv fails `ttsload doctor --fix`: {_last_line(fixed)}")
    if layered:
        own = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        # addsitedir, not a bare path: the bases' own .pth files (a layered base's layer) are read too
        lines = [f"import site; site.addsitedir({d!r})" for d in site_dirs()]
        Path(own, "_ttsload_ab_layer.pth").write_text("\n".join(lines) + "\n")
    where = run([python, "-P", "-c", "import ttsload.bench.cell, ttsload; print(ttsload.__file__)"], cwd="/")
    if where.returncode != 0:
        raise SideError(f"side {label}: {spec} installed but cannot import ttsload's harness: {_last_line(where)}")
    if not Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()):
        raise SideError(f"side {label}: {spec}'s venv imports ttsload from {where.stdout.strip()}, not its own "
                        "install (the layered environment shadows it)")
