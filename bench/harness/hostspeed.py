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
across the run the way its timings are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

REPEATS = 3
TOLERANCE = 0.10  # default: a part this much slower or faster than the baseline's makes timings incomparable
ALPHA = 0.01  # ...and only when the readings of the two runs differ at this level (two-sided Mann-Whitney)
MIN_READINGS = 10  # per side: 5 readings of a host whose speed is bimodal separate by chance (p = 0.008 at 5/5)


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
    """Seconds per part, the median of `repeats`."""
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


PARTS = ("python_s", "memcopy_s", "matmul_s")
COLUMN = "host_{}"  # a cell row's column for one part: host_python_s, ...


def of_cells(cells: Iterable[dict[str, list[float]]]) -> dict[str, list[float]]:
    """A run's host speed: per part, the readings taken before all of its cells."""
    pooled: dict[str, list[float]] = {part: [] for part in PARTS}
    for metrics in cells:
        for part in PARTS:
            pooled[part] += metrics.get(COLUMN.format(part), [])
    return {part: values for part, values in pooled.items() if values}


SLOWER, FASTER, ALIKE = "slower", "faster", "alike"


def compare(baseline: dict[str, list[float]], current: dict[str, list[float]], tolerance: float = TOLERANCE,
            alpha: float = ALPHA) -> tuple[str | None, str]:
    """How the current run's host ran the workload against the baseline's: SLOWER (some part slower beyond
    `tolerance`, significantly: a handful of readings of a jittery host is not a slower host), FASTER (some
    part faster so, none slower), ALIKE, or None when either side has no reading; and one line saying so."""
    from scipy.stats import mannwhitneyu

    if not baseline or not current:
        side = "baseline" if not baseline else "current run"
        return None, f"host speed: the {side} has no calibration reading (recorded since issue #15)"
    parts = [k for k in PARTS if baseline.get(k) and current.get(k)]
    if not parts:
        return None, "host speed: no calibration part in common"
    n_current, n_baseline = len(current[parts[0]]), len(baseline[parts[0]])
    if min(n_current, n_baseline) < MIN_READINGS:
        return ALIKE, (f"host speed: {n_current} readings against {n_baseline}, too few to tell hosts apart "
                       f"(at least {MIN_READINGS} a side): timings judged as on one host")
    said, moved = [], set()
    for part in parts:
        change = statistics.median(current[part]) / statistics.median(baseline[part]) - 1.0
        p = float(mannwhitneyu(current[part], baseline[part], alternative="two-sided").pvalue)
        if abs(change) > tolerance and p <= alpha:
            moved.add(SLOWER if change > 0 else FASTER)
        said.append(f"{part.removesuffix('_s')} {100 * change:+.0f} % (p={p:.3f})")
    verdict = SLOWER if SLOWER in moved else FASTER if moved else ALIKE
    return verdict, (f"host speed against the baseline's ({n_current} readings against {n_baseline}): "
                     f"{', '.join(said)}: {verdict} (a part counts when beyond "
                     f"±{100 * tolerance:g} % at two-sided Mann-Whitney p <= {alpha:g})")
