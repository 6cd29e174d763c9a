"""Warm or cold page cache for a model's files before a cell; warm and cold are different experiments.

Also keeps the scratch file a cold cell reads to measure the device's read bandwidth (its limit):
written once, of random bytes, and dropped from the cache by the cell before each read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MODES = ("warm", "cold")
SCRATCH_BYTES = 256 * 2**20  # well above a device's own cache and the kernel's readahead window
_CHUNK = 8 * 2**20


def prepare(paths: list[Path], mode: str) -> None:
    """warm: read every byte once so the cell finds it cached. cold: ask the kernel to drop it.

    Only regular files are touched: a FIFO or a device (/dev/zero) would block or never end here, outside
    any deadline; the cell's sha256 check then refuses it in one line. A missing file is left to it too.
    """
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO's open would wait for a writer
        except OSError:
            continue
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            if mode == "warm":
                while handle.read(1 << 22):
                    pass
            elif mode == "cold":
                os.fsync(handle.fileno())
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            else:
                raise ValueError(f"unknown page-cache mode {mode!r}: use one of {', '.join(MODES)}")


def scratch_file(folder: Path, size: int = SCRATCH_BYTES) -> Path:
    """The read-bandwidth scratch file in `folder`, written (random bytes, fsynced) unless it is there.

    Random bytes, so a compressing filesystem cannot read it faster than a checkpoint; written
    once and reused, so a cold cell pays only for reading it.
    """
    path = folder / f"read-probe-{size // 2**20}MiB.bin"
    if path.is_file() and path.stat().st_size == size:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        for offset in range(0, size, _CHUNK):
            handle.write(os.urandom(min(_CHUNK, size - offset)))
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    return path
