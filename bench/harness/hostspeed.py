"""Host speed: a short fixed workload timed at the start of every run, so the gate can tell a slower host
from slower code.

Two VMs of one machine class (same CPU model, cores, ISA flags and library versions) ran the same code
17-53 % apart in cold start on this infrastructure (session 7 against session 6): the fingerprint cannot
see VM placement, memory bandwidth or a busy host. This workload can. Its three parts stand for what a
cold start and a request spend their time on: interpreting Python (imports, module construction),
copying memory (weights), and dense arithmetic (synthesis).

The host's speed also moves within seconds (an idle EPYC VM ran the Python part in 45-87 ms within
30 s), so one reading at the start of a run says little. The harness takes a short one (about 0.25 s)
before every cell, while no cell runs, and a run's host speed is the median over all its cells: sampled
across the run the way its timings are. How the gate compares two runs' readings: bench/analysis/calibration.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

REPEATS = 3


def _python_work() -> None:
    table: dict[int, int] = {}
    for i in range(200_000):
        table[i % 997] = table.get(i % 997, 0) + i * i
    "".join(str(v) for v in table.values())


def _timed(work: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def measure(repeats: int = REPEATS) -> dict[str, Any]:
    """Seconds per part (calibration.PARTS, the columns the gate compares), the median of `repeats`."""
    source = np.ones(32 * 2**20 // 8)  # 32 MiB, touched, so the copy measures bandwidth, not page faults
    target = np.empty_like(source)
    target.fill(0.0)
    # small enough that OpenBLAS runs it on one thread: two threads waiting at a barrier for a shared core
    # moved the 384x384 version of this part by 12 % between two runs a minute apart
    a = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)
    a @ a  # the first product of a process starts OpenBLAS: not the host's speed
    parts = {
        "python_s": _timed(_python_work, repeats),
        "memcopy_s": _timed(lambda: [np.copyto(target, source) for _ in range(8)], repeats),
        "matmul_s": _timed(lambda: [a @ a for _ in range(300)], repeats),
    }
    return {name: statistics.median(times) for name, times in parts.items()}
