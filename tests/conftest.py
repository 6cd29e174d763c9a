"""Shared fixtures: one real tiny Coqui VITS built into a private TTSLOAD_HOME per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ttsload.strategies.base import ModelFiles


@pytest.fixture(scope="session")
def ttsload_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ttsload-home")
    os.environ["TTSLOAD_HOME"] = str(home)  # inherited by the cell processes the runner starts
    os.environ.setdefault("TTSLOAD_MEMCPY_MIB", "32")  # every test cell runs the limit probe: a smaller copy
    return home


@pytest.fixture(scope="session")
def tiny(ttsload_home: Path) -> ModelFiles:
    from ttsload.bench.fixtures import build

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
