"""Small statistics used by summaries, tables and reports: medians, intervals, latency percentiles."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

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


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (numpy's linear interpolation, as latency_percentiles), None when there are no values."""
    return float(np.percentile(np.asarray(values, dtype=float), p)) if len(values) else None


def median_interval(values: Sequence[float | None], level: float = 0.95) -> tuple[float, float, float, float] | None:
    """Median with a distribution-free interval from order statistics: (median, low, high, coverage).

    [x(k), x(n-k+1)] covers the true median with probability 1 - 2*P(Binomial(n, 1/2) < k), whatever
    the distribution. The narrowest such interval reaching `level` is taken; with few repetitions no
    interval reaches it (3 repetitions: [min, max] covers 75 %), so [min, max] is returned with the
    coverage it really has, which tables print and comparisons check. None when there are no values.
    """
    clean = np.sort(np.asarray([v for v in values if v is not None], dtype=float))
    n = len(clean)
    if n == 0:
        return None
    k, coverage = _order_statistic(n, level)
    return float(np.median(clean)), float(clean[k - 1]), float(clean[n - k]), coverage


@lru_cache(maxsize=1024)
def _order_statistic(n: int, level: float) -> tuple[int, float]:
    """(k, coverage) of median_interval for n values: depends on n alone, so a report of 10^5 cells computes
    it once per repetition count, not once per cell group and metric."""
    from scipy.stats import binom

    k, coverage = 1, 1 - 2 * binom.cdf(0, n, 0.5)
    while k + 1 <= (n + 1) // 2 and 1 - 2 * binom.cdf(k, n, 0.5) >= level:
        k += 1
        coverage = 1 - 2 * binom.cdf(k - 1, n, 0.5)
    return k, float(max(coverage, 0.0))


# --- comparing repetitions: what the gate, baselines and history share -----------------------------

MIN_REPETITIONS = 3  # below this a rank test cannot reach significance: say so instead of guessing
STATISTICS: dict[str, Callable[..., Any]] = {"median": np.median, "mean": np.mean, "min": np.min, "max": np.max}


def statistic(values: Sequence[float], name: str) -> float:
    return float(STATISTICS[name](np.asarray(values, dtype=float)))


def p_worse(current: Sequence[float], baseline: Sequence[float], higher_is_worse: bool = True) -> float:
    """One-sided Mann–Whitney U p-value that `current` tends to be worse than `baseline`.

    Rank-based, so one slow outlier among the repetitions cannot make a regression on its own.
    Exact for small samples (scipy picks the method); 1.0 when both sides are all the same value.
    """
    from scipy.stats import mannwhitneyu

    current_a, baseline_a = np.asarray(current, dtype=float), np.asarray(baseline, dtype=float)
    if np.ptp(np.concatenate([current_a, baseline_a])) == 0:
        return 1.0
    alternative = "greater" if higher_is_worse else "less"
    return float(mannwhitneyu(current_a, baseline_a, alternative=alternative).pvalue)


def bootstrap_interval(values: Sequence[float], name: str = "median",
                       confidence: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a statistic (seeded, so saving a baseline twice gives one file)."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return None
    if np.ptp(data) == 0:
        return float(data[0]), float(data[0])
    result = bootstrap((data,), STATISTICS[name], confidence_level=confidence, n_resamples=1000,
                       method="percentile", rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
