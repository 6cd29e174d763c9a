"""Integrity of model files: the sha256 every file must have before it is read, taken from one open
descriptor, and the file's identity (inode, size, mtime, ctime) at that check, so a file rewritten or
truncated between the check and its use is refused rather than served (or mapped into a SIGBUS).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol


class ModelFiles(Protocol):
    """What the checks read of a model's files (base.ModelFiles has it; named here so this module, which base
    re-exports, imports nothing of base)."""

    @property
    def name(self) -> str: ...
    @property
    def config(self) -> Path: ...
    @property
    def checkpoint(self) -> Path: ...
    @property
    def sha256(self) -> dict[str, str]: ...
    @property
    def extras(self) -> dict[str, Path]: ...


class StrategyError(Exception):
    """A strategy could not load or serve the model; the message is one line naming what and where."""


_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, streamed so large checkpoints do not need their size in RAM."""
    return _hash_open(path)[0]


Fingerprint = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


def _fingerprint(st: os.stat_result) -> Fingerprint:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _hash_open(path: Path) -> tuple[str, Fingerprint]:
    """sha256 and fingerprint of one open descriptor of a regular file; a write during the hash is caught."""
    digest = hashlib.sha256()
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
        before = os.fstat(handle.fileno())
        if not stat.S_ISREG(before.st_mode):
            raise StrategyError(f"{path} is not a regular file: refusing to read it")
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
        after = _fingerprint(os.fstat(handle.fileno()))
    if after != _fingerprint(before):
        raise StrategyError(f"{path} changed while its sha256 was computed: refusing it")
    return digest.hexdigest(), after


def verify_files(files: ModelFiles, paths: list[Path] | None = None) -> dict[Path, Fingerprint]:
    """Raise StrategyError unless every file has the sha256 its manifest recorded; return each file's
    fingerprint (inode, size, mtime, ctime) at that check, for `unchanged` after the load."""
    seen = {}
    for path in paths if paths is not None else [files.config, files.checkpoint]:
        expected = files.sha256.get(path.name)
        if expected is None:
            raise StrategyError(f"no sha256 recorded for {path} in the manifest of model '{files.name}'")
        if not path.exists():
            raise StrategyError(f"model file missing: {path}")
        actual, seen[path] = _hash_open(path)
        if actual != expected:
            raise StrategyError(
                f"sha256 mismatch for {path}: manifest says {expected[:12]}..., file is {actual[:12]}... "
                "(truncated, corrupted or replaced; rebuild or re-download it)"
            )
    return seen


def unchanged(seen: dict[Path, Fingerprint], when: str) -> None:
    """Refuse a file whose inode, size, mtime or ctime differ from when its sha256 was checked: what was
    read (or is about to be mapped) may not be what was verified."""
    for path, fingerprint in seen.items():
        try:
            now = _fingerprint(os.stat(path))
        except OSError:
            now = None
        if now != fingerprint:
            raise StrategyError(f"{path} changed {when} (inode, size or times differ from its sha256 check): "
                                "refusing what was read from it")
