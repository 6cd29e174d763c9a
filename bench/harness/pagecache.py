"""Warm or cold page cache for a model's files before a cell; warm and cold are different experiments."""

from __future__ import annotations

import os
from pathlib import Path

MODES = ("warm", "cold")


def prepare(paths: list[Path], mode: str) -> None:
    """warm: read every byte once so the cell finds it cached. cold: ask the kernel to drop it."""
    for path in paths:
        with open(path, "rb") as handle:
            if mode == "warm":
                while handle.read(1 << 22):
                    pass
            elif mode == "cold":
                os.fsync(handle.fileno())
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            else:
                raise ValueError(f"unknown page-cache mode {mode!r}: use one of {', '.join(MODES)}")
