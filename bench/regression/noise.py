"""The noise study: how much the metrics of one configuration move between repetitions on this machine,
and so the smallest change the gate can tell from that noise.

For each cell and metric, the repetitions' relative residuals (value / median - 1) stand for the
machine's noise. A seeded bootstrap draws a baseline of `baseline_n` and a gate run of `gate_n`
repetitions from them, as the gate would see them with no code change:
- threshold: the change of medians that no-change noise crosses in only `family_alpha` of the gate's
  runs. A gate run makes one check per cell and judged metric (10 cells x 5 rules = 50 by default), so
  a per-check 95th percentile fired somewhere in 1 run of 5 on the EPYC class (session 6: 5 same-config
  runs, one false alarm at +23.6 % on a 23 % threshold). The threshold is therefore the one-sided normal
  quantile 1 - family_alpha / checks times the bootstrap spread of the change (corrected for 5-sample
  plug-in bias), and never below the plain 95th percentile;
- detectable change: the smallest true shift (1 % steps) that the gate flags — change beyond the
  threshold and one-sided Mann–Whitney p <= alpha — in at least 80 % of draws. None when the
  repetition counts cannot reach alpha at all (3 against 3 never gets below p = 0.05).
Per metric and model the worst cell decides (largest threshold and detectable change), and per metric
the worst cell of all: noise scales with the size of a phase, which the model sets (vits-tiny's 60 ms
weights phase jitters by 13 %, vits's by 3-6 %), so one threshold for all models would blind the gate
on the steady ones. Within a model every strategy shares the worst cell's threshold: 5 repetitions
estimate one cell's spread too roughly to trust alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ttsload.bench.cells import group_label
from ttsload.bench.regression.gate import DEFAULT_SPEC, parse_spec
from ttsload.bench.regression.resultset import ResultSet

DRAWS, POWER, NULL_QUANTILE = 2000, 0.8, 0.95
FAMILY_ALPHA = 0.05  # false alarms tolerated per gate run, over all its checks
SPEC_RULES = len(parse_spec(DEFAULT_SPEC))  # checks the gate makes per cell by default
MAX_SHIFT_PCT = 500
# Each wall-clock metric beside its CPU-time counterpart, each untrimmed memory reading beside the trimmed one.
PAIRS = [("cold_start_s", "cold_start_cpu_s"), ("import_s", "import_cpu_s"), ("construct_s", "construct_cpu_s"),
         ("weights_s", "weights_cpu_s"), ("first_audio_s", "first_audio_cpu_s"),
         ("latency_p50_s", "request_cpu_p50_s"), ("pss_mb", "pss_trimmed_mb"), ("uss_mb", "uss_trimmed_mb"),
         ("pss_anon_mb", "pss_anon_trimmed_mb"), ("pss_file_mb", "pss_file_trimmed_mb")]


def _u_tail(n_cur: int, n_base: int) -> np.ndarray:
    """P(U >= u) under no difference, for u = 0..n_cur*n_base (exact, no ties): Mann–Whitney's null."""
    # ways[m][n][u]: arrangements of m current and n baseline values with u (current > baseline) pairs
    ways = [[np.zeros(1, dtype=float) for _ in range(n_base + 1)] for _ in range(n_cur + 1)]
    for m in range(n_cur + 1):
        for n in range(n_base + 1):
            if m == 0 or n == 0:
                ways[m][n] = np.zeros(m * n + 1)
                ways[m][n][0] = 1.0
                continue
            out = np.zeros(m * n + 1)
            out[n:n + len(ways[m - 1][n])] += ways[m - 1][n]  # the largest value is a current one: +n pairs
            out[:len(ways[m][n - 1])] += ways[m][n - 1]
            ways[m][n] = out
    counts = ways[n_cur][n_base]
    tail: np.ndarray = np.cumsum(counts[::-1])[::-1] / counts.sum()
    return tail


def min_p(baseline_n: int, gate_n: int) -> float:
    """The smallest p-value a one-sided Mann–Whitney test can give with these counts: 1 / C(n+m, m)."""
    return 1 / math.comb(baseline_n + gate_n, gate_n)


def family_z(checks: int, family_alpha: float = FAMILY_ALPHA) -> float:
    """The one-sided normal quantile that `checks` independent checks cross together in `family_alpha` of runs."""
    from scipy.stats import norm

    return float(norm.ppf(1 - family_alpha / max(checks, 1)))


def cell_noise(values: list[float], baseline_n: int, gate_n: int, alpha: float, seed: int = 0,
               z: float | None = None) -> dict[str, Any]:
    """CV, threshold and detectable change (percent) of one cell's repetitions of one metric.

    `z` (from `family_z`) widens the threshold to z bootstrap standard deviations of the no-change change;
    None keeps the plain 95th percentile (one check alone)."""
    data = np.asarray(values, dtype=float)
    centre = float(np.median(data))
    if len(data) < 2 or centre == 0:
        return {"n": len(data), "cv_pct": None, "threshold_pct": None, "detectable_pct": None}
    residuals = data / centre  # 1 + relative residual
    cv = float(np.std(data, ddof=1) / abs(np.mean(data)) * 100)
    rng = np.random.default_rng(seed)
    base = residuals[rng.integers(0, len(data), (DRAWS, baseline_n))]
    cur = residuals[rng.integers(0, len(data), (DRAWS, gate_n))]
    base_median = np.median(base, axis=1)
    null_change = (np.median(cur, axis=1) / base_median - 1) * 100
    threshold = max(float(np.quantile(null_change, NULL_QUANTILE)), 0.0)
    if z is not None:  # the bootstrap's plug-in spread of n values is short by sqrt((n - 1) / n)
        spread = float(np.std(null_change)) * math.sqrt(len(data) / (len(data) - 1))
        threshold = max(threshold, z * spread)
    detectable = None
    if min_p(baseline_n, gate_n) <= alpha:
        tail = _u_tail(gate_n, baseline_n)

        def power(shift: int) -> float:
            shifted = cur * (1 + shift / 100)
            above = (shifted[:, :, None] > base[:, None, :]).sum(axis=(1, 2))
            ties = (shifted[:, :, None] == base[:, None, :]).sum(axis=(1, 2))
            p = tail[np.ceil(above + 0.5 * ties).astype(int)]
            change = (np.median(shifted, axis=1) / base_median - 1) * 100
            return float(np.mean((change > threshold) & (p <= alpha)))

        # Same draws for every shift, and each draw's verdict only turns on as the shift grows: bisect.
        low, high = 0, MAX_SHIFT_PCT
        if power(high) >= POWER:
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (low, middle) if power(middle) >= POWER else (middle, high)
            detectable = float(high)
    return {"n": len(data), "cv_pct": cv, "threshold_pct": threshold, "detectable_pct": detectable}


def study(result: ResultSet, metrics: list[str] | None = None, baseline_n: int = 5, gate_n: int = 3,
          alpha: float = 0.05) -> dict[str, Any]:
    """Per cell and per metric noise, and per metric the thresholds the gate should use on this machine."""
    chosen = sorted(metrics or result.metrics())
    checks = len(result.cells) * SPEC_RULES
    z = family_z(checks)
    cells: dict[str, dict[str, Any]] = {}
    for key in sorted(result.cells):
        for metric in chosen:
            values = result.cells[key].get(metric) or []
            if len(values) >= 2:
                cells.setdefault(group_label(key), {})[metric] = cell_noise(values, baseline_n, gate_n, alpha, z=z)
    thresholds = {metric: _worst(cells.values(), metric) for metric in chosen}
    by_model = {}
    for model in sorted({key[1] for key in result.cells}):
        own = [cells[label] for key in result.cells if key[1] == model and (label := group_label(key)) in cells]
        by_model[model] = {metric: t["threshold_pct"] for metric in chosen if (t := _worst(own, metric))}
    return {"source": result.source, "run_id": result.run_id, "runs": max(result.repetitions.values(), default=0),
            "baseline_repetitions": baseline_n, "gate_repetitions": gate_n, "alpha": alpha,
            "min_p": min_p(baseline_n, gate_n), "checks_per_gate_run": checks, "family_alpha": FAMILY_ALPHA,
            "z": round(z, 3), "thresholds": {m: t for m, t in thresholds.items() if t},
            "thresholds_by_model": by_model, "cells": cells}


def _worst(cells: Iterable[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """One metric over some cells: CV median and max, and the worst cell's threshold and detectable change."""
    found = [c[metric] for c in cells if metric in c and c[metric]["cv_pct"] is not None]
    if not found:
        return None
    detectable = [f["detectable_pct"] for f in found]
    return {"cv_pct_median": round(float(np.median([f["cv_pct"] for f in found])), 2),
            "cv_pct_max": round(max(f["cv_pct"] for f in found), 2),
            "threshold_pct": float(math.ceil(max(f["threshold_pct"] for f in found))),
            "detectable_pct": None if None in detectable else max(detectable),
            "cells": len(found)}


def markdown(found: dict[str, Any], pairs: list[tuple[str, str]] = PAIRS) -> str:
    """Per metric: CV, threshold, detectable change; then wall against CPU for each pair of metrics."""
    lines = [f"## ttsload noise: {found['runs']} runs of `{found['source']}`", "",
             f"gate: {found['baseline_repetitions']} baseline vs {found['gate_repetitions']} current repetitions, "
             f"one-sided Mann–Whitney at alpha {found['alpha']:g} (smallest reachable p {found['min_p']:.3f}); "
             f"threshold = the change no-change noise crosses in {found.get('family_alpha', FAMILY_ALPHA):.0%} of "
             f"gate runs of {found.get('checks_per_gate_run', '?')} checks (z = {found.get('z', '?')} bootstrap "
             "standard deviations, at least the 95th percentile); detectable = smallest shift flagged in "
             f"{POWER:.0%} of draws (worst cell)", "",
             "| metric | cells | CV median | CV max | threshold | detectable change |", "|---|---|---|---|---|---|"]
    for metric, t in found["thresholds"].items():
        detect = f"+{t['detectable_pct']:.0f}%" if t["detectable_pct"] is not None else "not detectable"
        lines.append(f"| {metric} | {t['cells']} | {t['cv_pct_median']:.1f}% | {t['cv_pct_max']:.1f}% | "
                     f"+{t['threshold_pct']:.0f}% | {detect} |")
    by_model = found.get("thresholds_by_model") or {}
    if len(by_model) > 1:
        models = sorted(by_model)
        lines += ["", "Thresholds per model (what the gate applies to that model's cells):", "",
                  "| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for metric in found["thresholds"]:
            lines.append(f"| {metric} | " + " | ".join(
                f"+{by_model[m][metric]:.0f}%" if metric in by_model[m] else "-" for m in models) + " |")
    shown = [(w, c) for w, c in pairs if w in found["thresholds"] and c in found["thresholds"]]
    if shown:
        lines += ["", "| metric | CV median | its steadier counterpart | CV median | ratio of CVs |",
                  "|---|---|---|---|---|"]
        for wall, cpu in shown:
            a, b = found["thresholds"][wall]["cv_pct_median"], found["thresholds"][cpu]["cv_pct_median"]
            lines.append(f"| {wall} | {a:.1f}% | {cpu} | {b:.1f}% | {b / a:.2f} |" if a else
                         f"| {wall} | {a:.1f}% | {cpu} | {b:.1f}% | - |")
    return "\n".join(lines) + "\n"
