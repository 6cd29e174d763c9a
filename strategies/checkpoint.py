"""Integrity checks that run before any checkpoint byte is unpickled."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ttsload.strategies.base import ModelFiles, StrategyError

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, streamed so large checkpoints do not need their size in RAM."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(files: ModelFiles, paths: list[Path] | None = None) -> None:
    """Raise StrategyError unless every file has the sha256 its manifest recorded."""
    for path in paths if paths is not None else [files.config, files.checkpoint]:
        expected = files.sha256.get(path.name)
        if expected is None:
            raise StrategyError(f"no sha256 recorded for {path} in the manifest of model '{files.name}'")
        if not path.is_file():
            raise StrategyError(f"model file missing: {path}")
        actual = sha256_of(path)
        if actual != expected:
            raise StrategyError(
                f"sha256 mismatch for {path}: manifest says {expected[:12]}..., file is {actual[:12]}... "
                "(truncated, corrupted or replaced; rebuild or re-download it)"
            )
