"""Small statistics used by summaries, tables and reports: medians, intervals, latency percentiles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def median(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return float(np.median(clean)) if clean else None


def latency_percentiles(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99 with linear interpolation (numpy's default); None when there are no requests."""
    if not latencies:
        return {"latency_p50_s": None, "latency_p90_s": None, "latency_p99_s": None}
    p50, p90, p99 = np.percentile(np.asarray(latencies, dtype=float), [50, 90, 99])
    return {"latency_p50_s": float(p50), "latency_p90_s": float(p90), "latency_p99_s": float(p99)}


def median_interval(values: Sequence[float | None], level: float = 0.95) -> tuple[float, float, float, float] | None:
    """Median with a distribution-free interval from order statistics: (median, low, high, coverage).

    [x(k), x(n-k+1)] covers the true median with probability 1 - 2*P(Binomial(n, 1/2) < k), whatever
    the distribution. The narrowest such interval reaching `level` is taken; with few repetitions no
    interval reaches it (3 repetitions: [min, max] covers 75 %), so [min, max] is returned with the
    coverage it really has, which tables print and comparisons check. None when there are no values.
    """
    from scipy.stats import binom

    clean = np.sort(np.asarray([v for v in values if v is not None], dtype=float))
    n = len(clean)
    if n == 0:
        return None
    k, coverage = 1, 1 - 2 * binom.cdf(0, n, 0.5)
    while k + 1 <= (n + 1) // 2 and 1 - 2 * binom.cdf(k, n, 0.5) >= level:
        k += 1
        coverage = 1 - 2 * binom.cdf(k - 1, n, 0.5)
    return float(np.median(clean)), float(clean[k - 1]), float(clean[n - k]), float(max(coverage, 0.0))
