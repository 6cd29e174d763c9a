"""Turn one cell's raw observations into its summary row (the columns of summary.csv)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ttsload.bench.analysis import stats
from ttsload.bench.analysis.scenario_summary import scenario_columns

if TYPE_CHECKING:
    from ttsload.bench.harness.runner import CellOutcome

MB = 1024 * 1024
PHASES = (  # column, from event, to event
    ("import_s", None, "imports_done"),
    ("verify_s", "load_start", "verify_done"),
    ("construct_s", "verify_done", "construct_done"),
    ("weights_s", "construct_done", "weights_done"),
    ("first_audio_s", "weights_done", "first_audio"),
)
COLUMNS = [
    "run_id", "strategy", "model", "scenario", "repeat", "status", "reason",
    "cold_start_s", "import_s", "verify_s", "construct_s", "weights_s", "first_audio_s",
    "rss_mb", "pss_mb", "uss_mb", "pss_anon_mb", "pss_file_mb", "peak_pss_mb", "peak_rss_mb",
    "rss_hwm_mb",
    "processes", "latency_p50_s", "latency_p90_s", "latency_p99_s", "rtf", "audio_s",
    "requests", "loads", "torch_threads", "cache", "int8_fraction", "bf16_fraction", "output_digest",
    # scenarios (bench/scenario_summary.py): whole-tree totals, readiness, faults, switching, leaks, sampler
    "workers", "pss_total_mb", "uss_total_mb", "rss_sum_mb", "peak_pss_total_mb", "ready_s",
    "scaleout_ready_s", "scaleout_latency_p50_s", "scaleout_requests", "worker_deaths", "failed_requests",
    "evictions", "model_load_s", "leak_mb_per_1k", "leak_ci_low", "leak_ci_high", "leak_flagged",
    "growth_mb_per_1k", "trims", "trim_returned_mb", "sampler", "sampler_cpu_s", "samples", "sampler_interval_s",
]


def _first(events: list[dict[str, Any]]) -> dict[str, float]:
    seen: dict[str, float] = {}
    for event in events:
        seen.setdefault(event["event"], event["t"])
    return seen


def _first_fields(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next((e for e in events if e["event"] == name), {})


def summarize(outcome: CellOutcome, run_id: str = "", cache: str = "") -> dict[str, Any]:
    cell, events = outcome.cell, outcome.events
    at = _first(events)
    row: dict[str, Any] = {
        "run_id": run_id, "strategy": cell.strategy, "model": cell.model_label, "scenario": cell.scenario,
        "repeat": cell.repeat, "status": outcome.status, "reason": outcome.reason, "cache": cache,
    }
    for column, start, end in PHASES:
        begin = outcome.t0 if start is None else at.get(start)
        row[column] = at[end] - begin if begin is not None and end in at else None
    row["cold_start_s"] = at["first_audio"] - outcome.t0 if "first_audio" in at else None

    requests = sorted((e for e in events if e["event"] == "request_end"), key=lambda e: e["index"])
    latencies = [r["latency_s"] for r in requests]
    row.update(stats.latency_percentiles(latencies))
    row["rtf"] = stats.median([r["latency_s"] / r["audio_s"] for r in requests if r["audio_s"] > 0])
    row["audio_s"] = sum(r["audio_s"] for r in requests) if requests else None
    row["requests"] = len(requests)
    row["loads"] = sum(1 for e in events if e["event"] == "weights_done")
    row["output_digest"] = (
        hashlib.sha256("".join(r["audio_sha256"] for r in requests).encode()).hexdigest()[:16] if requests else None
    )
    weights = _first_fields(events, "weights_done")
    row["int8_fraction"] = weights.get("int8_fraction")
    row["bf16_fraction"] = weights.get("bf16_fraction")
    row["torch_threads"] = _first_fields(events, "imports_done").get("torch_threads")

    steady = outcome.steady.total if outcome.steady else {}
    for key in ("rss", "pss", "uss", "pss_anon", "pss_file", "rss_hwm"):
        row[f"{key}_mb"] = steady[key] / MB if key in steady else None
    row["processes"] = len(outcome.steady.processes) if outcome.steady else None
    load_end = at.get("first_audio", float("inf"))
    during_load = [r.total for r in outcome.readings if r.t <= load_end] or [r.total for r in outcome.readings]
    row["peak_pss_mb"] = max((t["pss"] for t in during_load), default=None)
    row["peak_rss_mb"] = max((t["rss"] for t in during_load), default=None)
    for key in ("peak_pss_mb", "peak_rss_mb"):
        row[key] = row[key] / MB if row[key] is not None else None
    row.update(scenario_columns(outcome))
    return row
