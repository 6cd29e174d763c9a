"""What the terminal shows: a progress bar while cells run, and medians per strategy at the end."""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ttsload.bench.analysis.metrics import CONSOLE, CONSOLE_SCENARIO, Metric, shown
from ttsload.bench.analysis.stats import median, statistic
from ttsload.bench.cells import CellKey

# Off a terminal (CI logs, nox) rich assumes 80 columns and squashes the table: give it room.
# No markup: every line and table cell carries names, paths and failure reasons that may hold `[bold]` or
# `[/]` (a model path, a crafted scenario, an exception's text); styles are given as Text instead.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200, markup=False)

def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[detail]}", markup=False), console=console, transient=False,
    )


def medians_table(rows: list[dict[str, Any]], columns: list[Metric] | None = None,
                  title: str = "medians over repetitions (times in s, memory of the whole process tree)") -> Table:
    """One line per (scenario, strategy, model): each metric aggregated over the repetitions that succeeded."""
    columns = shown(CONSOLE) if columns is None else columns
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row.get("scenario") or "single", row["strategy"], row["model"])].append(row)
    table = Table(title=title)
    for header in ("scenario", "strategy", "model"):
        table.add_column(header)
    table.add_column("ok/n", justify="right")
    for metric in columns:
        table.add_column(f"{metric.label} {metric.unit}".strip(), justify="right")
    for (scenario, strategy, model), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        cells = []
        for metric in columns:
            values = [v for r in ok if (v := _number(r.get(metric.column))) is not None]
            cells.append(metric.format(statistic(values, metric.aggregate) if values else None))
        table.add_row(scenario, strategy, model, f"{len(ok)}/{len(group)}", *cells)
    return table


def cell_line(row: dict[str, Any]) -> Text:
    """One line per finished cell, so a log (CI, nox) shows progress too."""
    if row["status"] != "ok":
        return Text.assemble(("FAILED", "red"), f" {row['reason']}")
    line = (f"ok, cold start {_fmt(row.get('cold_start_s'), '{:.2f}')} s, PSS {_fmt(row.get('pss_mb'), '{:.0f}')} MiB"
            f" ({row.get('processes')} processes), p50 {_fmt(row.get('latency_p50_s'), '{:.2f}')} s")
    if row.get("leak_mb_per_1k") is not None:
        verdict = "LEAK" if row.get("leak_flagged") else "no leak called"
        line += (f", leak {row['leak_mb_per_1k']:+.1f} MiB/1k [{row['leak_ci_low']:+.1f}, {row['leak_ci_high']:+.1f}]"
                 f" {verdict} (growth between trims {_fmt(row.get('growth_mb_per_1k'), '{:+.1f}')} MiB/1k)")
    if row.get("worker_deaths"):
        line += f", {row['worker_deaths']} worker(s) died"
    return Text(line)


def print_tables(rows: list[dict[str, Any]], phases: list[dict[str, Any]]) -> None:
    """The end-of-run tables: medians; then, for scenario cells, their own columns and load phases."""
    console.print(medians_table(rows))
    scenario_rows = [r for r in rows if r.get("scenario", "single") != "single"]
    if scenario_rows:
        present = [m for m in shown(CONSOLE_SCENARIO) if any(_number(r.get(m.column)) is not None
                                                              for r in scenario_rows)]
        console.print(medians_table(scenario_rows, present, "scenario medians (memory summed over the process tree)"))
    if phases:
        console.print(phase_table(phases))


def phase_table(phases: list[dict[str, Any]]) -> Table:
    """Latency per load phase (closed loop C, Poisson rate λ), medians over repetitions."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in phases:
        strategy, model, scenario, _ = CellKey.parse(record["cell"])
        groups[(f"{scenario} {strategy} {model}", record["phase"])].append(record)
    table = Table(title="load phases (client-side latency, medians over repetitions)")
    for header in ("cell", "phase", "n", "ok", "failed", "p50 s", "p90 s", "p99 s", "req/s"):
        table.add_column(header, justify="left" if header in ("cell", "phase") else "right")
    for (cell, phase), group in groups.items():
        values = [median([_number(r.get(k)) for r in group]) for k in
                  ("ok", "failed", "latency_p50_s", "latency_p90_s", "latency_p99_s", "throughput_rps")]
        table.add_row(cell, phase, str(len(group)), *[_fmt(v, f) for v, f in
                      zip(values, ("{:.0f}", "{:.0f}", "{:.3f}", "{:.3f}", "{:.3f}", "{:.2f}"), strict=True)])
    return table


def _fmt(value: float | str | None, fmt: str) -> str:
    number = _number(value)
    return fmt.format(number) if number is not None else "-"


def quality_table(records: list[dict[str, Any]]) -> Table:
    """Output of each strategy against the run's fp32 reference, same texts and seeds."""
    table = Table(title="output vs fp32 reference (repetition 0, same texts and seeds)")
    for header in ("strategy", "model", "reference", "identical", "SNR dB median", "SNR dB min", "length ratio"):
        table.add_column(header, justify="right" if "SNR" in header or "ratio" in header else "left")
    for q in records:
        table.add_row(q["strategy"], q["model"], q["reference"], "yes" if q["identical"] else "no",
                      _db(q["snr_db_median"]), _db(q["snr_db_min"]), f"{q['length_ratio_median']:.3f}")
    return table


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _number(value: float | str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
