"""The first write-up rebuilt from an http run: per-request reload vs a persistent worker behind a web app.

Its claims (data in reports/published/styletts2-worker-en.toml) are a 40-50 % shorter generation time,
memory that plateaus, and no crash under several requests. The http scenario measures the same
shapes through a real server: client latency per load phase, the server tree's memory after every
request, failed requests. A row per (model, variant) where both sides ran.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ttsload.reports.claims import read_published
from ttsload.reports.load import RunData

CLAIMS = read_published("styletts2-worker-en")


def worker_comparison(data: RunData) -> dict[str, Any] | None:
    """The comparison table and notes, or None when the run has no http cells of both strategies."""
    before, after = CLAIMS["before"][0], CLAIMS["after"][0]
    cells = data.ok[data.ok["scenario"].str.startswith("http") & data.ok["strategy"].isin([before, after])]
    rows = []
    for (model, scenario), group in cells.groupby(["model", "scenario"], sort=False):
        if set(group["strategy"]) != {before, after}:
            continue
        p50 = {s: _phase_p50(data, group[group["strategy"] == s]["cell"]) for s in (before, after)}
        drift = {s: _drift(data, group[group["strategy"] == s]["cell"]) for s in (before, after)}
        change = 100 * (p50[after] / p50[before] - 1) if p50[before] and p50[after] else None
        rows.append({"model": model, "variant": scenario,
                     f"{before} p50 (s)": _fmt(p50[before], 2), f"{after} p50 (s)": _fmt(p50[after], 2),
                     "latency change": _fmt(change, 0, "%+.0f %%"),
                     f"{before} memory drift (MiB)": _fmt(drift[before], 0, "%+.0f"),
                     f"{after} memory drift (MiB)": _fmt(drift[after], 0, "%+.0f"),
                     "failed requests": int(group["failed_requests"].fillna(0).sum())})
    if not rows:
        return None
    claims = CLAIMS["claims"]
    notes = [f"Published: \"{claims['latency']}\"; \"{claims['memory']}\"; \"{claims['reliability']}\" "
             f"(setting: {CLAIMS['setting']}).",
             "Measured here through gunicorn + Flask on loopback: latency is the median of the first closed-loop "
             "phase's client-side latencies (one client), median over repetitions; memory drift is the server "
             "tree's PSS after the last request minus after the first, median over repetitions."]
    return {"title": CLAIMS["title"], "table": pd.DataFrame(rows), "notes": notes}


def _phase_p50(data: RunData, cells: pd.Series) -> float | None:
    """Median over repetitions of the first load phase's p50 (the closed loop with one client)."""
    phases = data.phases[data.phases["cell"].isin(set(cells))]
    if not len(phases):
        return None
    first = phases.groupby("cell", sort=False).head(1)
    return float(first["latency_p50_s"].median())


def _drift(data: RunData, cells: pd.Series) -> float | None:
    """Median over repetitions of (PSS after the last request - PSS after the first), whole server tree."""
    after = data.samples[data.samples["cell"].isin(set(cells)) & data.samples["after_request"].notna()]
    drifts = []
    for _, readings in after.groupby("cell"):
        ordered = readings.sort_values("after_request")
        drifts.append(float(ordered["pss_mb"].iloc[-1] - ordered["pss_mb"].iloc[0]))
    return float(pd.Series(drifts).median()) if drifts else None


def _fmt(value: float | None, decimals: int, pattern: str | None = None) -> str:
    if value is None or pd.isna(value):
        return "-"
    return pattern % value if pattern else f"{value:.{decimals}f}"

