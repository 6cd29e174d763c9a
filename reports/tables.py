"""Tables of a run: medians with intervals per model x scenario x strategy, failures, and the
recommendation per scenario (stated only where the intervals do not overlap).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ttsload.bench.analysis.metrics import BY_COLUMN, REPORT, REPORT_MAIN, REPORT_SCENARIO, Metric, shown
from ttsload.bench.analysis.stats import median_interval
from ttsload.bench.cells import CellKey
from ttsload.reports.load import RunData

# Below this coverage an interval is too weak to call a winner (2 repetitions: [min, max] covers 50 %).
MIN_COVERAGE = 0.75


METRICS = shown(REPORT)  # medians.csv and the long table: every metric the report compares
SCENARIO_METRICS = shown(REPORT_SCENARIO)
# The page's table stays readable at a glance; medians.csv (long form) keeps every metric above.
MAIN_METRICS = shown(REPORT_MAIN)
# What "wins" means per criterion: lower is better for all three. Memory is the steady PSS after
# malloc_trim(0) everywhere (the reading that repeats), else the untrimmed one (http cells, older runs).
CRITERIA = {"memory": ("pss_trimmed_mb", "pss_mb"), "cold start": ("cold_start_s",), "latency": ("latency_p50_s",)}


def intervals(data: RunData, metrics: list[Metric] = METRICS) -> pd.DataFrame:
    """Long table: one row per model x scenario x strategy x metric, over the repetitions that succeeded."""
    rows, by = [], data.keys
    present = [m for m in metrics if m.column in data.cells]
    for keys, group in data.cells.groupby(by, sort=False):
        # one array per group, not one pandas selection per group and metric: 10^5 cells stay in seconds
        ok = group[[m.column for m in present]].to_numpy(dtype=float)[(group["status"] == "ok").to_numpy()]
        for j, metric in enumerate(present):
            values = ok[:, j][~np.isnan(ok[:, j])]
            found = median_interval(values.tolist())
            median, low, high, coverage = found if found else (None, None, None, None)
            rows.append({**dict(zip(by, keys, strict=True)), "metric": metric.column, "unit": metric.unit,
                         "median": median, "low": low, "high": high, "coverage": coverage,
                         "n": len(values), "cells": len(group)})
    columns = [*by, "metric", "unit", "median", "low", "high", "coverage", "n", "cells"]
    return pd.DataFrame(rows, columns=columns)


def fmt(value: float | None, decimals: int) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.{decimals}f}"


def fmt_interval(row: pd.Series | dict, decimals: int) -> str:
    """`median [low–high]`; the bracket is left out when there is a single repetition."""
    if row["median"] is None or pd.isna(row["median"]):
        return "-"
    if row["n"] < 2:
        return fmt(row["median"], decimals)
    return f"{fmt(row['median'], decimals)} [{fmt(row['low'], decimals)}–{fmt(row['high'], decimals)}]"


def main_table(long: pd.DataFrame, data: RunData, metrics: list[Metric] = MAIN_METRICS) -> pd.DataFrame:
    """What a reader scans: one row per model x scenario x strategy, each metric as median [interval]."""
    rows, by = [], data.keys
    counts = data.cells.assign(ok=data.cells["status"] == "ok").groupby(by, sort=False)["ok"].agg(["sum", "size"])
    counted = {(k if isinstance(k, tuple) else (k,)): (ok, size) for k, ok, size in
               zip(counts.index, counts["sum"], counts["size"], strict=True)}
    for keys, by_metric in by_group(long, by).items():
        row = dict(zip(by, keys, strict=True))
        ok, size = counted.get(keys, (0, 0))
        row["ok / cells"] = f"{int(ok)}/{int(size)}"
        for metric in metrics:
            found = by_metric.get(metric.column)
            row[metric.header] = fmt_interval(found, metric.decimals) if found is not None else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def by_group(long: pd.DataFrame, by: list[str]) -> dict[tuple, dict[str, dict]]:
    """The long table as {group keys: {metric: row}}, in one pass (not one pandas selection per group)."""
    grouped: dict[tuple, dict[str, dict]] = {}
    for row in long.to_dict("records"):
        grouped.setdefault(tuple(row[k] for k in by), {})[row["metric"]] = row
    return grouped


def without_constant_keys(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """For the page: drop model/scenario columns that hold one value, and name that value in the heading."""
    constant = [k for k in ("model", "scenario") if k in frame and frame[k].nunique() == 1]
    scope = " / ".join(str(frame[k].iloc[0]) for k in constant)
    return frame.drop(columns=constant), scope


def coverage_note(long: pd.DataFrame) -> str:
    """One sentence on what the brackets are, with the coverage they really have in this run."""
    levels = sorted({round(c, 3) for c in long["coverage"].dropna() if c > 0})
    if not levels:
        return "Single repetitions: no intervals (repeat cells to get them)."
    shown = ", ".join(f"{c:.0%}" for c in levels)
    return (f"Brackets: distribution-free interval of the median over repetitions (order statistics); it covers "
            f"the true median with probability {shown} at these repetition counts (95 % needs at least 6).")


def failures_table(data: RunData) -> pd.DataFrame:
    """Failed cells with their reason, then cells the run planned but never finished."""
    failed = data.failed[["strategy", "model", "scenario", "repeat", "status", "reason"]]
    unfinished = data.unfinished.assign(status="not finished")[
        ["strategy", "model", "scenario", "repeat", "status", "reason"]]
    return pd.concat([failed, unfinished], ignore_index=True).astype({"repeat": int})


def recommendations(long: pd.DataFrame) -> list[str]:
    """One line per model x scenario: the winner per criterion, only when its interval clears every other."""
    lines = []
    by = ["model", "scenario", *(["machine_class"] if "machine_class" in long else [])]
    for keys, group in long.groupby(by, sort=False):
        calls = []
        for criterion, columns in CRITERIA.items():
            found = [group[(group["metric"] == column) & group["median"].notna()] for column in columns]
            calls.append(_call(criterion, next((rows for rows in found if len(rows)), found[-1])))
        lines.append(" / ".join(map(str, keys)) + ": " + "; ".join(calls) + ".")
    return lines


def _call(criterion: str, rows: pd.DataFrame) -> str:
    metric = BY_COLUMN[rows["metric"].iloc[0]] if len(rows) else None
    if len(rows) < 2:
        return f"{criterion}: nothing to compare"
    ranked = rows.sort_values("median")
    best, rest = ranked.iloc[0], ranked.iloc[1:]
    weak = ranked[ranked["coverage"] < MIN_COVERAGE]
    if len(weak):
        return f"{criterion}: no call (fewer than 3 successful repetitions for {', '.join(weak['strategy'])})"
    if best["high"] < rest["low"].min():
        runner_up = rest.iloc[0]
        return (f"{criterion}: **{best['strategy']}** ({fmt(best['median'], metric.decimals)} {metric.unit} vs "
                f"{fmt(runner_up['median'], metric.decimals)} {metric.unit} for {runner_up['strategy']}, "
                f"intervals apart)")
    overlapping = rest[rest["low"] <= best["high"]]["strategy"].tolist()
    return (f"{criterion}: no clear winner ({best['strategy']} lowest, interval overlaps "
            f"{', '.join(overlapping)})")


def scenario_table(data: RunData) -> pd.DataFrame:
    """The scenario columns of cells from scenarios other than single, for the metrics they measured."""
    rows = data.cells[data.cells["scenario"] != "single"]
    present = [m for m in SCENARIO_METRICS if m.column in rows and rows[m.column].notna().any()]
    if not len(rows) or not present:
        return pd.DataFrame()
    subset = replace(data, cells=rows)
    return main_table(intervals(subset, present), subset, present)


def phase_table(data: RunData) -> pd.DataFrame:
    """Client-side latency per load phase (closed loop C, Poisson λ): medians over repetitions."""
    if not len(data.phases):
        return pd.DataFrame()
    keys = [CellKey.parse(cell) for cell in data.phases["cell"]]
    frame = data.phases.assign(strategy=[k.strategy for k in keys], model=[k.model for k in keys],
                               scenario=[k.scenario for k in keys])
    rows = []
    for (scenario, strategy, model, phase), group in frame.groupby(["scenario", "strategy", "model", "phase"],
                                                                   sort=False):
        row = {"scenario": scenario, "strategy": strategy, "model": model, "phase": phase, "repetitions": len(group),
               "requests ok / failed": f"{int(group['ok'].sum())} / {int(group['failed'].sum())}"}
        for column, label, decimals in (("latency_p50_s", "p50 (s)", 2), ("latency_p99_s", "p99 (s)", 2),
                                        ("throughput_rps", "throughput (req/s)", 2)):
            found = median_interval(group[column].dropna().tolist())
            row[label] = fmt_interval({"median": found[0], "low": found[1], "high": found[2], "n": len(group)},
                                      decimals) if found else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def by_family(main: pd.DataFrame, data: RunData) -> list[tuple[str, pd.DataFrame]]:
    """The main table split into one section per model family (one section when the run has one family)."""
    if "family" not in data.cells or data.cells["family"].nunique() <= 1:
        return [("", main)]
    families = data.cells.drop_duplicates("model").set_index("model")["family"]
    return [(family, main[main["model"].map(families) == family]) for family in sorted(families.unique())]


FAMILY_METRICS = ["params", "file_mb", "cold_start_s", "pss_mb", "latency_p50_s", "rtf"]


def family_table(data: RunData) -> pd.DataFrame:
    """Across model families: model, family, size and the headline numbers per strategy (single-process cells)."""
    cells = data.cells[(data.cells["scenario"] == "single") & data.cells["family"].notna()] \
        if "family" in data.cells else data.cells.iloc[0:0]
    if not len(cells):
        return pd.DataFrame()
    subset = replace(data, cells=cells)
    metrics = [BY_COLUMN[c] for c in FAMILY_METRICS]
    table = main_table(intervals(subset, metrics), subset, metrics)
    families = cells.drop_duplicates("model").set_index("model")["family"]
    table.insert(1, "family", table["model"].map(families))
    return table.drop(columns=["scenario"]).sort_values(["family", "model"], kind="stable")


def to_markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if len(frame) else "_(none)_"
