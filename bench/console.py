"""What the terminal shows: a progress bar while cells run, and medians per strategy at the end."""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.stats import median

# Off a terminal (CI logs, nox) rich assumes 80 columns and squashes the table: give it room.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

TABLE_COLUMNS = (  # (summary column, header, format)
    ("cold_start_s", "cold start s", "{:.2f}"),
    ("import_s", "imports s", "{:.2f}"),
    ("verify_s", "verify s", "{:.3f}"),
    ("construct_s", "construct s", "{:.3f}"),
    ("weights_s", "weights s", "{:.3f}"),
    ("first_audio_s", "1st synth s", "{:.2f}"),
    ("pss_mb", "PSS MiB", "{:.0f}"),
    ("uss_mb", "USS MiB", "{:.0f}"),
    ("peak_pss_mb", "peak PSS MiB", "{:.0f}"),
    ("latency_p50_s", "p50 s", "{:.3f}"),
    ("rtf", "RTF", "{:.3f}"),
    ("loads", "loads", "{:.0f}"),
)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"), console=console, transient=False,
    )


def medians_table(rows: list[dict[str, Any]]) -> Table:
    """One line per (strategy, model): medians over the repetitions that succeeded."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["strategy"], row["model"])].append(row)
    table = Table(title="medians over repetitions (times in s, memory of the whole process tree)")
    table.add_column("strategy")
    table.add_column("model")
    table.add_column("ok/n", justify="right")
    for _, header, _ in TABLE_COLUMNS:
        table.add_column(header, justify="right")
    for (strategy, model), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        cells = []
        for column, _, fmt in TABLE_COLUMNS:
            value = median([_number(r.get(column)) for r in ok])
            cells.append(fmt.format(value) if value is not None else "-")
        table.add_row(strategy, model, f"{len(ok)}/{len(group)}", *cells)
    return table


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


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
