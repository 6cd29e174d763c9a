"""Leak trend: memory against requests served after warm-up, as MB per 1000 requests with an interval.

The points are the readings taken right after each malloc_trim(0) of a soak (cell/pool_kind.py):
memory the allocator merely kept is given back by then, so what still grows is held by someone.

Theil–Sen (the median of pairwise slopes) rather than least squares: a server's memory moves in
steps (an allocator arena grows, a cache fills), and one step should not tilt the whole fit. The
interval is Sen's, from scipy.stats.theilslopes. A leak is called only when the whole interval lies
above the threshold, so a flat series with one late step is not a leak, and a steady climb is.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy import stats as scipy_stats

MB = 1024 * 1024
MIN_POINTS = 5  # fewer points after warm-up: no interval worth the name


@dataclass(frozen=True)
class LeakFit:
    slope_mb_per_1k: float
    ci_low: float
    ci_high: float
    points: int
    warmup: int
    threshold_mb_per_1k: float
    confidence: float

    @property
    def flagged(self) -> bool:
        return self.ci_low > self.threshold_mb_per_1k



def fit(points: list[tuple[int, float]], warmup: int, threshold_mb_per_1k: float,
        confidence: float = 0.95) -> LeakFit | None:
    """Fit (request index, bytes) pairs with index ≥ warmup; None when too few remain."""
    kept = sorted((index, value) for index, value in points if index >= warmup)
    if len(kept) < MIN_POINTS or len({index for index, _ in kept}) < 2:
        return None
    xs = [index for index, _ in kept]
    ys = [value / MB for _, value in kept]
    slope, _, low, high = scipy_stats.theilslopes(ys, xs, alpha=confidence)
    return LeakFit(slope * 1000, low * 1000, high * 1000, len(kept), warmup, threshold_mb_per_1k, confidence)
