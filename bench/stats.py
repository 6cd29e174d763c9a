"""Small statistics used by summaries and tables: medians and latency percentiles."""

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
