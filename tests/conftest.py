"""Shared fixtures: one real tiny Coqui VITS built into a private TTSLOAD_HOME per test session.

Two tiers: `nox -s unit` runs `pytest -m "not integration"` with TTSLOAD_UNIT_TIER=1, and every test that
builds a model or starts a `python -m ttsload...` child carries the `integration` marker (so do the few
checks at scale). In the unit tier, building a fixture or starting such a child fails the test at once,
so a test missing its marker is caught instead of quietly making the fast tier slow.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ttsload.strategies.base import ModelFiles

UNIT_TIER = os.environ.get("TTSLOAD_UNIT_TIER") == "1"
RESULTS = Path(__file__).parent / "data" / "results"  # recorded runs (tests/data/README.md)


def _refuse(what: str) -> None:
    # pytest.fail raises a BaseException: code under test that catches Exception cannot swallow it
    pytest.fail(f"unit tier: this test {what}; mark it integration", pytrace=False)


def _starts_ttsload(command: Any) -> bool:
    """Whether a Popen command line is `python [...] -m ttsload[.something]` (the CLI, a cell, a server)."""
    parts = [str(part) for part in command] if isinstance(command, (list, tuple)) else str(command).split()
    return any(a == "-m" and b.split(".")[0] == "ttsload" for a, b in zip(parts, parts[1:], strict=False))


class _GuardedPopen(subprocess.Popen):
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        if _starts_ttsload(args):
            _refuse(f"starts a ttsload child ({' '.join(map(str, args))[:120]})")
        super().__init__(args, *rest, **kwargs)


def _guard_unit_tier() -> None:
    """Make the two slow things a unit test must not do fail loudly (subprocess.run goes through Popen)."""
    from ttsload.bench import models

    def build(name: str, force: bool = False) -> ModelFiles:
        _refuse(f"builds a model ({name})")
        raise AssertionError  # unreachable: _refuse raises

    def build_into(fixture: Any, out: Path) -> dict[str, Any]:
        _refuse(f"builds a model ({fixture.name})")
        return {}

    models.build, models.build_into = build, build_into  # type: ignore[assignment]
    subprocess.Popen = _GuardedPopen  # type: ignore[misc]


if UNIT_TIER:
    _guard_unit_tier()


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Any:
    """Put back this process's torch thread count after each test.

    A topology built in the test process may set it (prefork's parent computes with one thread so that
    it can fork), and an in-process reference computed later with another count is not bit-identical
    to a worker's audio: the reduction order differs.
    """
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads or os.cpu_count() or 1)


@pytest.fixture(scope="session")
def ttsload_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ttsload-home")
    os.environ["TTSLOAD_HOME"] = str(home)  # inherited by the cell processes the runner starts
    os.environ.setdefault("TTSLOAD_MEMCPY_MIB", "32")  # every test cell runs the limit probe: a smaller copy
    os.environ.setdefault("TTSLOAD_WARMUP", "0")  # a warm-up process per `ttsload run` (test_run checks it) is minutes
    return home


@pytest.fixture(scope="session")
def tiny(ttsload_home: Path) -> ModelFiles:
    from ttsload.bench.models import build

    return build("vits-tiny")


@pytest.fixture
def tiny_copy(tiny: ModelFiles, tmp_path: Path) -> Path:
    """A private copy of the tiny model folder (with its manifest) that a test may damage."""
    target = tmp_path / "model"
    shutil.copytree(tiny.checkpoint.parent, target)
    return target


def ttsload(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process, as a user would (with `env` added to the environment)."""
    return subprocess.run([sys.executable, "-P", "-m", "ttsload", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (`ttsload.cli.main.main`), for commands that start no child: the same exit
    code, stdout and stderr as `ttsload(...)` without the seconds of a fresh interpreter importing torch."""
    from ttsload.bench import results
    from ttsload.cli.main import main

    results._warned.clear()  # a fresh process warns once about a folder's malformed lines: so does each call
    out, err = io.StringIO(), io.StringIO()
    handler = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors and --help/--version
                code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
    return subprocess.CompletedProcess(["ttsload", *args], code, out.getvalue(), err.getvalue())
