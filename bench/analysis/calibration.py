"""Host calibration, compared: whether the current run's host ran the calibration workload slower or faster
than the baseline's, so the gate can tell a slower host from slower code.

The readings are taken by the harness before every cell (bench/harness/hostspeed.py) and recorded as the
`host_*_s` columns of each cell row; this module only reads them back, so the gate needs nothing of the
harness. A run's host speed is, per part, every reading of all its cells: sampled across the run the way its
timings are.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

TOLERANCE = 0.10  # default: a part this much slower or faster than the baseline's makes timings incomparable
ALPHA = 0.01  # ...and only when the readings of the two runs differ at this level (two-sided Mann-Whitney)
MIN_READINGS = 10  # per side: 5 readings of a host whose speed is bimodal separate by chance (p = 0.008 at 5/5)

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
