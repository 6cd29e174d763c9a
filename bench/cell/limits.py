"""The machine's physical limits, measured inside the cell before its imports: memcpy and cold-read bandwidth.

A loader's weights phase cannot move its bytes faster than one copy in memory (warm page cache)
or one read off the device (cold), so those two rates put its own rate in proportion. They are
measured in the cell process itself, on the CPU and under the load the cell gets, with the
standard library only: torch and numpy are imported later, inside the timed imports phase.

Every pass is timed and the fastest kept: on a shared machine other processes can only slow a
pass down, never speed it up, so the best pass is the closest to what the hardware can do.
The probe's own time is reported (`probe_s`) and left out of cold start by the analysis; its
buffers are unmapped afterwards and the kernel's peak-RSS mark is reset, so memory figures do
not carry it either.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.bench.cellspec import LimitProbe
from ttsload.strategies.events import Event

if TYPE_CHECKING:  # strategies.base imports numpy, which this probe must run before
    from ttsload.strategies.base import Hook

MEMCPY_BYTES = 256 * 2**20  # far above any last-level cache, so the copy runs at DRAM speed
MEMCPY_PASSES = 3  # timed passes after one untimed pass that faults the pages in
READ_PASSES = 2  # the scratch file is evicted before each pass
READ_CHUNK = 8 * 2**20


def memcpy_bandwidth(size: int = MEMCPY_BYTES, passes: int = MEMCPY_PASSES) -> dict[str, Any]:
    """Bytes copied per second, buffer to buffer (memoryview slice assignment is one memmove).

    The source is filled first: untouched anonymous pages all map the kernel's one zero page,
    which would be read from the CPU's cache instead of memory.
    """
    source, target = mmap.mmap(-1, size), mmap.mmap(-1, size)
    src, dst = memoryview(source), memoryview(target)
    try:
        src[:1] = b"\x5a"
        filled = 1
        while filled < size:  # doubling: fills 256 MiB without a 256 MiB temporary
            step = min(filled, size - filled)
            src[filled:filled + step] = src[:step]
            filled += step
        dst[:] = src  # untimed: the first write to each page pays a fault and zeroing, not a copy
        times = []
        for _ in range(passes):
            start = time.perf_counter()
            dst[:] = src
            times.append(time.perf_counter() - start)
    finally:
        src.release()
        dst.release()
        source.close()
        target.close()
    return {"memcpy_gbps": size / min(times) / 1e9, "memcpy_bytes": size, "memcpy_passes": passes}


def _evict(handle: Any) -> None:
    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def read_bandwidth(path: Path, passes: int = READ_PASSES, model_file: Path | None = None) -> dict[str, Any]:
    """Bytes per second read from `path` after its pages were dropped from the page cache.

    The file is the harness's scratch file of random bytes (so a compressing filesystem gains
    nothing). It is dropped again at the end, leaving the page cache as the harness prepared it.
    `read_same_device` says whether it lives on the device of the model's files.
    """
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    times, size = [], 0
    with open(path, "rb", buffering=0) as handle:
        for _ in range(passes):
            _evict(handle)
            handle.seek(0)
            size, start = 0, time.perf_counter()
            while count := handle.readinto(view):
                size += count
            times.append(time.perf_counter() - start)
        _evict(handle)
    view.release()
    same = os.stat(path).st_dev == os.stat(model_file).st_dev if model_file else None
    return {"read_gbps": size / min(times) / 1e9 if size else None, "read_bytes": size, "read_passes": passes,
            "read_same_device": same}


def _reset_peak_rss() -> bool:
    """Reset VmHWM (the kernel's peak RSS), which the probe's buffers would otherwise set."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def measure(probe: LimitProbe, hook: Hook) -> None:
    """Run the probe the runner asked for and emit one `limits` event (its fields, or the error)."""
    start = time.monotonic()
    found: dict[str, Any] = {}
    try:
        found.update(memcpy_bandwidth(probe.memcpy_bytes or MEMCPY_BYTES))
        if probe.read_file:
            found.update(read_bandwidth(Path(probe.read_file),
                                        model_file=Path(probe.model_file) if probe.model_file else None))
    except (OSError, MemoryError, ValueError) as exc:  # the cell still runs: its limit columns stay empty
        found["limits_error"] = f"{type(exc).__name__}: {exc}"
    found["peak_rss_reset"] = _reset_peak_rss()
    end = time.monotonic()
    hook(Event.LIMITS, t=end, probe_s=end - start, **found)
