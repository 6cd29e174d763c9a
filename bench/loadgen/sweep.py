"""Latency targets, one step's summary, and the rate sweep that finds capacity.

A target names a percentile of a per-request time: `ttfa_p95=1.0s` (time to first audio) or
`total_p99=800ms` (time to the last byte). A request meets it when it succeeded, its time is within the
bound and the listener heard no underrun (unless the target allows them: `--allow-underruns`, for a model
that cannot stream in real time on the machine, where no rate would meet the target); goodput is the share
of a step's requests that meet it, failed requests included. A step passes when goodput reaches the
percentile's share (p95: 95 %), which for a p95 target is the same as "the p95 over all requests, a failure
counting as too slow, is within the bound".
Capacity is the highest swept rate that passed before the first step that failed; the interval around it
is (that rate, the failing rate): the true capacity lies between, at the sweep's resolution.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttsload.bench.errors import UsageError

METRICS = {"ttfa": "ttfa_s", "total": "total_s"}
_TARGET = re.compile(r"(?P<metric>[a-z]+)_p(?P<pct>\d+(?:\.\d+)?)\s*(?:=|<=)\s*"
                     r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)?")
STREAMING_MAJORITY = 0.5  # a step whose requests mostly streamed is "streaming"


@dataclass(frozen=True)
class Target:
    metric: str  # ttfa or total
    percentile: float  # 95 for p95
    bound_s: float
    underruns_allowed: bool = False  # judge the time alone (a model slower than real time on this machine)

    @classmethod
    def parse(cls, text: str, underruns_allowed: bool = False) -> Target:
        match = _TARGET.fullmatch(text.strip())
        if not match:
            raise UsageError(f"--target '{text}': expected METRIC_pNN=VALUE[s|ms], e.g. ttfa_p95=1.0s or "
                             "total_p99=800ms")
        metric, percentile = match["metric"], float(match["pct"])
        if metric not in METRICS:
            raise UsageError(f"--target '{text}': metric '{metric}' is not one of {', '.join(METRICS)}")
        if not 0 < percentile < 100:
            raise UsageError(f"--target '{text}': percentile must be between 0 and 100, got {percentile:g}")
        bound = float(match["value"]) / (1000.0 if match["unit"] == "ms" else 1.0)
        if bound <= 0:
            raise UsageError(f"--target '{text}': the bound must be above 0")
        return cls(metric, percentile, bound, underruns_allowed)

    @property
    def label(self) -> str:
        return f"{self.metric}_p{self.percentile:g}<={self.bound_s:g}s" + (" underruns allowed" if
                                                                            self.underruns_allowed else "")

    def met_by(self, record: dict[str, Any]) -> bool:
        value = record.get(METRICS[self.metric])
        heard = bool(record.get("underruns")) and not self.underruns_allowed
        return bool(record.get("ok")) and value is not None and value <= self.bound_s and not heard


def percentiles(values: Sequence[float], prefix: str) -> dict[str, float | None]:
    """p50/p95/p99 (numpy's linear interpolation), None when there are no values."""
    points = np.percentile(np.asarray(values, dtype=float), [50, 95, 99]) if len(values) else [None] * 3
    return {f"{prefix}_p{p}_s": (None if v is None else float(v)) for p, v in zip((50, 95, 99), points, strict=True)}


def summarize(records: list[dict[str, Any]], offsets: Sequence[float], wall_s: float, cpu_s: float,
              target: Target | None) -> dict[str, Any]:
    """One step's figures from its request records (see the module's docstring for goodput)."""
    ok = [r for r in records if r.get("ok")]
    finished = [r["total_s"] for r in records if r.get("total_s") is not None]
    span = max(offsets[-1], 1e-9) if len(offsets) > 1 else None
    send_errors = [r["send_error_s"] for r in records if r.get("send_error_s") is not None]
    summary: dict[str, Any] = {
        "requests": len(records), "requests_ok": len(ok), "requests_failed": len(records) - len(ok),
        "errors": dict(Counter(r.get("error_kind", "error") for r in records if not r.get("ok"))),
        "offered_rps": (len(offsets) - 1) / span if span else None,
        "achieved_rps": len(ok) / wall_s if wall_s > 0 else None,
        **percentiles([r["ttfa_s"] for r in ok], "ttfa"), **percentiles([r["total_s"] for r in ok], "latency"),
        "latency_all_max_s": max(finished, default=None),
        "underruns": sum(int(r.get("underruns") or 0) for r in ok),
        "streaming_share": (sum(bool(r.get("streaming")) for r in ok) / len(ok)) if ok else None,
        "send_error_p99_s": float(np.percentile(send_errors, 99)) if send_errors else None,
        "generator_cpu_share": cpu_s / wall_s if wall_s > 0 else None, "wall_s": wall_s,
    }
    summary["streaming"] = summary["streaming_share"] is not None and summary["streaming_share"] > STREAMING_MAJORITY
    if target is not None:
        summary["goodput"] = sum(target.met_by(r) for r in records) / len(records) if records else 0.0
        summary["target_met"] = summary["goodput"] >= target.percentile / 100.0
    return summary


@dataclass
class Sweep:
    target: Target
    steps: list[dict[str, Any]] = field(default_factory=list)  # each: rate + the step's summary

    @property
    def capacity_rps(self) -> float | None:
        """The highest rate that passed before the first failure; None if the first step failed."""
        passed = None
        for step in self.steps:
            if not step["target_met"]:
                break
            passed = step["rate"]
        return passed

    @property
    def bracket(self) -> tuple[float | None, float | None]:
        """(capacity, first failing rate); the upper side None when no step failed (capacity not reached)."""
        failing = next((s["rate"] for s in self.steps if not s["target_met"]), None)
        return self.capacity_rps, failing

    def to_json(self) -> dict[str, Any]:
        low, high = self.bracket
        return {"target": self.target.label, "capacity_rps": low, "capacity_low_rps": low, "failing_rps": high,
                "reached": high is not None, "steps": len(self.steps)}


def run_sweep(rates: Sequence[float], target: Target, step: Callable[[float], dict[str, Any]]) -> Sweep:
    """Step through rising `rates`, `step(rate)` giving each step's summary, and stop after the first step
    that misses the target: higher rates only queue more."""
    if not rates or any(b <= a for a, b in zip(rates, rates[1:], strict=False)) or rates[0] <= 0:
        raise UsageError(f"sweep rates must rise and be above 0, got {', '.join(f'{r:g}' for r in rates) or 'none'}")
    sweep = Sweep(target)
    for rate in rates:
        summary = {"rate": rate, **step(rate)}
        sweep.steps.append(summary)
        if not summary["target_met"]:
            break
    return sweep


def geometric_rates(start: float, factor: float, top: float) -> list[float]:
    """start, start*factor, ... up to top (inclusive within rounding), rounded to 3 significant digits."""
    if start <= 0 or factor <= 1 or top < start:
        raise UsageError(f"--sweep START:FACTOR:MAX needs START > 0, FACTOR > 1 and MAX >= START "
                         f"(got {start:g}:{factor:g}:{top:g})")
    rates, rate = [], start
    while rate <= top * (1 + 1e-9):
        rates.append(float(f"{rate:.3g}"))
        rate *= factor
    return rates
