"""Judging an A/B run on paired ratios: per cell and metric, the median of B/A over its pairs and an interval.

Both cells of a pair ran under the same noise (interleaved, or at once in duet mode), so their ratio
carries the code's change and little of the host's: a host 30 % slower for a minute slows A and B alike.
The interval is the sign test's order-statistic interval of the median ratio (scipy.stats.quantile_test),
which assumes nothing about the ratios' distribution; with too few pairs it has no bounds at the asked
confidence (6 pairs at least for 95 %), and the check says so instead of guessing.

A check regresses only when its whole interval lies above 1 + threshold; it improved when its whole
interval lies below 1 - threshold. The thresholds come from an A-against-A noise study made the same way
(bench/regression/abnoise.py), or else from the fallbacks below. Like the stored-baseline gate it fails
closed: a check with no pair where both sides gave a finite value is COULD NOT JUDGE, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import numpy as np

from ttsload.bench.analysis.metrics import BY_COLUMN
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.regression.ab import Pair

CONFIDENCE = 0.95
REGRESSION, IMPROVED, OK = "REGRESSION", "improved", "ok"
UNJUDGED, UNDECIDED = "COULD NOT JUDGE", "insufficient pairs"
# The metrics an A/B run judges, with the thresholds (percent) used when no A-vs-A noise study matches this
# machine class. Tighter than the stored gate's (gate.DEFAULT_SPEC): a paired ratio leaves out the
# day-to-day host speed that widened those. CPU seconds are steadier than wall seconds on a shared host.
FALLBACK_PCT: dict[str, float] = {"cold_start_s": 10.0, "weights_s": 10.0, "cold_start_cpu_s": 5.0,
                                  "weights_cpu_s": 5.0, "pss_anon_trimmed_mb": 3.0}
METRICS = tuple(FALLBACK_PCT)


@dataclass
class AbCheck:
    """One metric of one cell, judged on its pairs."""

    cell: str
    metric: str
    phase: str
    ratio: float | None  # median of B/A over the pairs used
    low: float | None
    high: float | None
    pairs: int  # pairs where both sides gave a finite value
    threshold_pct: float
    verdict: str  # ok | improved | REGRESSION | insufficient pairs | COULD NOT JUDGE
    note: str = ""


def phase_of(metric: str) -> str:
    """What part of a cell the metric measures, as the output names it."""
    found = BY_COLUMN.get(metric)
    if found is None:
        return metric
    wall = BY_COLUMN.get(metric.replace("_cpu_s", "_s"))  # a CPU-time metric spans its wall-time phase
    if metric.endswith("_cpu_s") and wall is not None and wall.phase:
        return f"{wall.label} phase, CPU"
    return f"{found.label} phase" if found.phase else found.label


@cache
def min_pairs(confidence: float = CONFIDENCE) -> int:
    """The fewest pairs for which a sign-test interval of the median reaches `confidence`."""
    from scipy.stats import quantile_test

    n = 1
    while not math.isfinite(quantile_test(np.arange(n, dtype=float), q=0, p=0.5)
                            .confidence_interval(confidence).low):
        n += 1
    return n


def interval(ratios: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The sign test's order-statistic interval of the median ratio; NaN bounds when too few pairs."""
    from scipy.stats import quantile_test

    found = quantile_test(np.asarray(ratios, dtype=float), q=1.0, p=0.5).confidence_interval(confidence)
    return float(found.low), float(found.high)


def ratios_of(pairs: list[Pair], metric: str) -> tuple[list[float], str]:
    """B/A of every pair where both sides gave a finite, positive A value; and a note on the pairs left out."""
    ratios, missing = [], {"A": 0, "B": 0}
    for pair in pairs:
        a, b = pair.values.get("A", {}).get(metric), pair.values.get("B", {}).get(metric)
        for label, value in (("A", a), ("B", b)):
            if value is None or not math.isfinite(value):
                missing[label] += 1
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) and a > 0:
            ratios.append(b / a)
    left = [f"{label} gave no {metric} in {count}" for label, count in missing.items() if count]
    return ratios, f"of {len(pairs)} pairs, {' and '.join(left)}" if left else ""


def judge(cell: str, metric: str, pairs: list[Pair], threshold_pct: float,
          confidence: float = CONFIDENCE) -> AbCheck:
    ratios, note = ratios_of(pairs, metric)
    base = (cell, metric, phase_of(metric))
    if not math.isfinite(threshold_pct):
        return AbCheck(*base, None, None, None, len(ratios), threshold_pct, UNJUDGED,
                       f"threshold {threshold_pct} is not a finite number")
    if not ratios:
        return AbCheck(*base, None, None, None, 0, threshold_pct, UNJUDGED, note or f"no {metric} on either side")
    ratio = float(np.median(ratios))
    low, high = interval(ratios, confidence)
    if not (math.isfinite(low) and math.isfinite(high)):
        why = f"{len(ratios)} pairs; a {confidence:.0%} interval needs at least {min_pairs(confidence)}"
        return AbCheck(*base, ratio, None, None, len(ratios), threshold_pct, UNDECIDED,
                       "; ".join(filter(None, [why, note])))
    limit = threshold_pct / 100
    verdict = REGRESSION if low > 1 + limit else IMPROVED if high < 1 - limit else OK
    return AbCheck(*base, ratio, low, high, len(ratios), threshold_pct, verdict, note)


def judge_all(pairs: list[Pair], thresholds: dict[str, float], metrics: tuple[str, ...] = METRICS,
              confidence: float = CONFIDENCE) -> list[AbCheck]:
    """Every metric of every cell; a metric with no threshold gets its fallback."""
    cells = list(dict.fromkeys(p.cell for p in pairs))
    return [judge(cell, metric, [p for p in pairs if p.cell == cell],
                  thresholds.get(metric, FALLBACK_PCT.get(metric, math.nan)), confidence)
            for cell in cells for metric in metrics]


def exit_code(checks: list[AbCheck]) -> ExitCode:
    """The gate's codes: FAILED on a regression, UNJUDGED when a side gave nothing, UNDECIDED on too few pairs."""
    found = {c.verdict for c in checks}
    return (ExitCode.FAILED if REGRESSION in found else ExitCode.UNJUDGED if UNJUDGED in found or not checks
            else ExitCode.UNDECIDED if UNDECIDED in found else ExitCode.OK)


def _bounds(check: AbCheck) -> str:
    return f"[{check.low:.3f}, {check.high:.3f}]" if check.low is not None and check.high is not None else "-"


def line(check: AbCheck) -> str:
    """`REGRESSION cell: metric (phase) B/A 1.120 [1.090, 1.150] over 6 pairs, threshold +5%`."""
    ratio = f"{check.ratio:.3f}" if check.ratio is not None else "-"
    text = (f"{check.verdict} {check.cell}: {check.metric} ({check.phase}) B/A {ratio} {_bounds(check)} over "
            f"{check.pairs} pairs, threshold +{check.threshold_pct:g}%")
    return text + (f" ({check.note})" if check.note else "")


def markdown(checks: list[AbCheck], header: list[str], confidence: float = CONFIDENCE) -> str:
    """The table for a CI log or a pull-request comment, then one line per check that decides the exit code."""
    code = exit_code(checks)
    regressions = sum(c.verdict == REGRESSION for c in checks)
    title = {ExitCode.OK: "pass: no regression", ExitCode.FAILED: f"FAIL: {regressions} regression(s)",
             ExitCode.UNJUDGED: "FAIL: could not judge",
             ExitCode.UNDECIDED: "UNDECIDED: too few pairs to judge some checks"}[code]
    lines = [f"## ttsload gate --ab: {title}", "", *header,
             f"a check regresses when the {confidence:.0%} sign-test interval of the median B/A ratio lies wholly "
             "above 1 + threshold", "",
             "| cell | metric | phase | B/A | interval | pairs | threshold | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for c in checks:
        ratio = f"{c.ratio:.3f}" if c.ratio is not None else "-"
        verdict = f"**{c.verdict}**" if c.verdict in (REGRESSION, UNJUDGED, UNDECIDED) else c.verdict
        lines.append(f"| {c.cell} | {c.metric} | {c.phase} | {ratio} | {_bounds(c)} | {c.pairs} "
                     f"| +{c.threshold_pct:g}% | {verdict} |")
    decisive = [c for c in checks if c.verdict in (REGRESSION, UNJUDGED, UNDECIDED, IMPROVED)]
    lines += [""] + [line(c) for c in decisive] if decisive else []
    return "\n".join(lines) + "\n"


def to_json(checks: list[AbCheck]) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(c).items()}
            for c in checks]
