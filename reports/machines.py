"""Across machine classes: per strategy x model (x scenario), each headline metric side by side per class,
a recommendation per class, and where the ranking of strategies differs between classes.

Only shown when the results hold more than one machine class (a folder merged from runs on different
hardware). Timings of two classes are never pooled: every number here is one class's own median.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ttsload.bench.analysis.metrics import BY_COLUMN
from ttsload.reports.load import RunData
from ttsload.reports.tables import CRITERIA, MAIN_METRICS, fmt_interval, recommendations


def class_labels(data: RunData) -> dict[str, str]:
    """A short header per machine class: 'A (host1, host2; AMD EPYC, 2 cores, avx512_bf16)'."""
    letters = {c: chr(ord("A") + i) if i < 26 else f"C{i}" for i, c in enumerate(data.machine_classes)}
    prints = {r.get("environment", {}).get("machine_class"): r.get("environment", {}).get("fingerprint") or {}
              for r in data.runs}
    labels = {}
    for machine_class, letter in letters.items():
        hosts = ", ".join(sorted(set(data.cells.loc[data.cells["machine_class"] == machine_class, "machine"]
                                     .astype(str))))
        found = prints.get(machine_class) or {}
        hardware = (f"; {found.get('cpu')}, {found.get('cores_logical')} cores, "
                    f"{','.join(found.get('isa') or []) or 'no avx2'}" if found else "")
        labels[machine_class] = f"{letter} = {machine_class} ({hosts}{hardware})"
    return labels


def side_by_side(long: pd.DataFrame, data: RunData) -> dict[str, Any] | None:
    """The section's parts, or None when the results hold one machine class."""
    if len(data.machine_classes) < 2 or "machine_class" not in long:
        return None
    labels = class_labels(data)
    short = {c: label.split(" = ")[0] for c, label in labels.items()}
    medians = long[long["metric"].isin([m.column for m in MAIN_METRICS])]
    rows = []
    found: dict[tuple, dict] = {}
    for r in medians.to_dict("records"):
        found[(r["model"], r["scenario"], r["strategy"], r["metric"], r["machine_class"])] = r
    for model, scenario, strategy in dict.fromkeys(key[:3] for key in found):
        row: dict[str, Any] = {"model": model, "scenario": scenario, "strategy": strategy}
        for metric in MAIN_METRICS:
            for machine_class in data.machine_classes:
                entry = found.get((model, scenario, strategy, metric.column, machine_class))
                row[f"{metric.header} {short[machine_class]}"] = (fmt_interval(entry, metric.decimals)
                                                                  if entry is not None else "-")
        rows.append(row)
    return {"classes": list(labels.values()), "table": pd.DataFrame(rows),
            "recommendations": recommendations(long), "rankings": ranking_differences(long, short)}


def ranking_differences(long: pd.DataFrame, short: dict[str, str]) -> list[str]:
    """One line per model x scenario x criterion where the order of strategies by median differs by class."""
    lines = []
    for (model, scenario), group in long.groupby(["model", "scenario"], sort=False):
        for criterion, columns in CRITERIA.items():  # the first column of the criterion that was measured
            found = [group[(group["metric"] == column) & group["median"].notna()] for column in columns]
            rows = next((r for r in found if len(r)), found[-1])
            column = str(rows["metric"].iloc[0]) if len(rows) else columns[-1]
            orders, spans = {}, {}
            for machine_class, per_class in rows.groupby("machine_class", sort=False):
                orders[machine_class] = per_class.sort_values(["median", "strategy"])["strategy"].tolist()
                spans[machine_class] = {r["strategy"]: _span(r) for r in per_class.to_dict("records")}
            common = set.intersection(*(set(o) for o in orders.values())) if len(orders) > 1 else set()
            ranked = {c: [s for s in order if s in common] for c, order in orders.items()}
            if len(common) > 1 and len({tuple(r) for r in ranked.values()}) > 1:
                unit = BY_COLUMN[column].unit
                shown = "; ".join(f"{short.get(c, c)}: {' < '.join(r)}" for c, r in ranked.items())
                lines.append(f"{model} / {scenario}, {criterion} ({unit}, lower first): the ranking differs between "
                             f"machine classes, {shown}; {_reversals(spans, sorted(common), short)}")
    return lines


def _span(row: dict[str, Any]) -> tuple[float, float]:
    """The interval of a median (the median itself when there is one repetition)."""
    low, high = row.get("low"), row.get("high")
    if row.get("n", 0) < 2 or low is None or pd.isna(low) or high is None or pd.isna(high):
        return row["median"], row["median"]
    return low, high


def _reversals(spans: dict[str, dict[str, tuple[float, float]]], common: list[str], short: dict[str, str]) -> str:
    """Which pairs swap places with intervals apart in both classes: a flip the data shows, not only medians."""
    found = []
    for a in common:
        for b in common:
            below = [c for c, s in spans.items() if s[a][1] < s[b][0]]  # a entirely below b in class c
            above = [c for c, s in spans.items() if s[b][1] < s[a][0]]
            if a < b and below and above:
                found.append(f"{a} vs {b} ({short.get(below[0], below[0])}: {a} lower, "
                             f"{short.get(above[0], above[0])}: {b} lower)")
    if found:
        return "reversed with intervals apart: " + ", ".join(found)
    return "no pair is reversed with intervals apart in both classes: within the noise of these repetitions"
