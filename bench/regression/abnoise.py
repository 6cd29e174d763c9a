"""The A/B gate's thresholds: an A-against-A noise study, made the way the gate measures, stored per machine class.

Both sides run the same code, so every ratio of a pair is noise. For each cell and metric the study pools
the ratios of all its runs and draws, with replacement, gate runs of `pairs` pairs from them; each draw's
sign-test interval has a lower bound, and the threshold is how far above 1 that bound reaches in only
`family_alpha` of gate runs over all their checks (cells x metrics: one check crossing anywhere is a false
alarm of the whole run). Per metric, the worst cell decides. The study is saved as
baselines/ab-noise/NAME.json with the machine's fingerprint, and the gate takes the one matching its
machine class (bench/regression/machines.py), as it does for stored baselines.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ttsload.bench import atomic
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.regression import abjudge, machines
from ttsload.bench.regression.ab import Pair

FOLDER = "ab-noise"  # under the baselines folder
FORMAT = "ttsload-ab-noise"
DRAWS = 4000
FAMILY_ALPHA = 0.05  # false alarms tolerated per A/B gate run, over all its checks


def lower_index(pairs: int, confidence: float = abjudge.CONFIDENCE) -> int | None:
    """Which order statistic (0-based) is the interval's lower bound for this many pairs; None when none is."""
    low, _ = abjudge.interval(list(map(float, range(pairs))), confidence)
    return int(low) if math.isfinite(low) else None


def cell_threshold(ratios: list[float], pairs: int, checks: int, confidence: float = abjudge.CONFIDENCE,
                   seed: int = 0) -> float | None:
    """Percent above 1 that no-change gate runs of `pairs` pairs put their interval's lower bound in only
    FAMILY_ALPHA / checks of draws; None with fewer than 2 ratios or too few pairs for an interval."""
    index = lower_index(pairs, confidence)
    data = np.asarray([r for r in ratios if math.isfinite(r)], dtype=float)
    if index is None or len(data) < 2:
        return None
    draws = data[np.random.default_rng(seed).integers(0, len(data), (DRAWS, pairs))]
    lows = np.sort(draws, axis=1)[:, index]
    return max(0.0, 100 * float(np.quantile(lows - 1, 1 - FAMILY_ALPHA / max(checks, 1))))


def study(runs: list[list[Pair]], pairs: int, metrics: tuple[str, ...] = abjudge.METRICS,
          confidence: float = abjudge.CONFIDENCE) -> dict[str, Any]:
    """Thresholds per metric (worst cell) from A-against-A runs, and how the runs themselves were judged."""
    cells = sorted({p.cell for run in runs for p in run})
    checks = len(cells) * len(metrics)
    per_cell: dict[str, dict[str, Any]] = {}
    thresholds: dict[str, float] = {}
    for metric in metrics:
        found = []
        for cell in cells:
            ratios, _ = abjudge.ratios_of([p for run in runs for p in run if p.cell == cell], metric)
            value = cell_threshold(ratios, pairs, checks, confidence)
            per_cell.setdefault(cell, {})[metric] = {"ratios": len(ratios), "threshold_pct": value}
            found += [value] if value is not None else []
        if found:
            thresholds[metric] = float(math.ceil(max(found)))
    verdicts = [abjudge.exit_code(abjudge.judge_all(run, thresholds, metrics, confidence)) for run in runs]
    return {"runs": len(runs), "pairs_per_gate_run": pairs, "confidence": confidence, "checks_per_gate_run": checks,
            "family_alpha": FAMILY_ALPHA, "thresholds_pct": thresholds, "cells": per_cell,
            "false_alarms_in_study": sum(code == ExitCode.FAILED for code in verdicts)}


def markdown(found: dict[str, Any]) -> str:
    lines = [f"## ttsload A/B noise: {found['runs']} A-against-A runs", "",
             f"threshold = how far above 1 the {found['confidence']:.0%} interval's lower bound of a "
             f"{found['pairs_per_gate_run']}-pair gate run reaches in {found['family_alpha']:.0%} of runs of "
             f"{found['checks_per_gate_run']} checks (worst cell); false alarms of the study's own runs under "
             f"these thresholds: {found['false_alarms_in_study']}", "",
             "| metric | threshold | fallback |", "|---|---|---|"]
    for metric, value in found["thresholds_pct"].items():
        lines.append(f"| {metric} | +{value:g}% | +{abjudge.FALLBACK_PCT.get(metric, math.nan):g}% |")
    return "\n".join(lines) + "\n"


def save(found: dict[str, Any], fingerprint: dict[str, Any], directory: Path, name: str) -> Path:
    path = directory / FOLDER / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fingerprint": fingerprint, **found}
    atomic.write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def find(directory: Path, fingerprint: dict[str, Any]) -> tuple[Path | None, dict[str, float]]:
    """The newest study in directory/ab-noise whose fingerprint matches, and its thresholds ({} when none)."""
    matching = []
    for path in sorted((directory / FOLDER).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("fingerprint"), dict)
                and not machines.differences(data["fingerprint"], fingerprint)):
            matching.append((str(data.get("saved", "")), path, data))
    if not matching:
        return None, {}
    _, path, data = max(matching, key=lambda found: found[:2])
    thresholds = data.get("thresholds_pct")
    return path, {str(k): _number(v) for k, v in thresholds.items()} if isinstance(thresholds, dict) else {}


def _number(value: object) -> float:
    """A stored threshold; anything but a real number is NaN, so its checks are COULD NOT JUDGE."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
