"""What a scenario cell's events say beyond single-cell metrics: scale-out, leak, load phases.

Time to ready of workers added under load and the latency meanwhile, the leak fit over the
readings taken after each malloc_trim and the growth between trims, and one record per load phase.
The metric registry (metrics.py) reads the first two; phase records go to results.jsonl as they are.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

from ttsload.bench.analysis import leak as leak_fit
from ttsload.bench.analysis import stats
from ttsload.bench.plan import LeakSettings
from ttsload.strategies.events import Event

if TYPE_CHECKING:
    from ttsload.bench.cells import CellOutcome

MB = 1024 * 1024


def _named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def scale_out(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Spawn-to-ready of the workers added under load, and latency of requests sent meanwhile."""
    outs = _named(events, Event.SCALE_OUT)
    if not outs:
        return {"scaleout_ready_s": None, "scaleout_latency_p50_s": None, "scaleout_requests": None}
    begin = outs[0]["t"]
    joined = [e for e in _named(events, Event.WORKER_READY) if e["t"] >= begin]
    end = max((e["t"] for e in joined), default=begin)
    starts = {e["index"]: e["t"] for e in _named(events, Event.REQUEST_START)}
    during = [e["latency_s"] for e in _named(events, Event.REQUEST_END)  # in service while workers were joining
              if e["t"] > begin and starts.get(e["index"], e["t"]) < end]
    return {"scaleout_ready_s": max((e["ready_s"] for e in joined), default=None),
            "scaleout_latency_p50_s": stats.median(during), "scaleout_requests": len(during)}


LEAK_METRIC = "pss_anon"  # anonymous memory: USS also counts private file pages (code faulted in), not leaks


def _trims(outcome: CellOutcome) -> list[tuple[int | None, float, float]]:
    """(requests served, anonymous memory before, after) for every trim of the cell (bytes, tree total)."""
    before = [(e.get("requests"), r.total[LEAK_METRIC]) for e, r in outcome.marks if e.get("label") == "before_trim"]
    after = [r.total[LEAK_METRIC] for e, r in outcome.marks if e.get("label") == "after_trim"]
    return [(served, used, left) for (served, used), left in zip(before, after, strict=False)]


def leak(outcome: CellOutcome, settings: LeakSettings) -> dict[str, Any]:
    """Leak = the trend of memory read right after each malloc_trim (what the processes really hold);
    growth = how fast memory climbs between trims (what a server that never trims sees: mostly retention)."""
    trims = _trims(outcome)
    found = leak_fit.fit([(served, left) for served, _, left in trims if served is not None],
                         settings.warmup, settings.threshold_mb_per_1k, settings.confidence)
    rates = [(used - before_left) / (served - before) * 1000 / MB
             for (before, _, before_left), (served, used, _) in pairwise(trims)
             if served and before is not None and served > before]
    row = {"trim_returned_mb": (trims[-1][1] - trims[-1][2]) / MB if trims else None,
           "growth_mb_per_1k": stats.median(rates), "trims": len(trims)}
    if found is None:
        return {**row, "leak_mb_per_1k": None, "leak_ci_low": None, "leak_ci_high": None, "leak_flagged": None}
    return {**row, "leak_mb_per_1k": found.slope_mb_per_1k, "leak_ci_low": found.ci_low,
            "leak_ci_high": found.ci_high, "leak_flagged": found.flagged}


def phase_records(outcome: CellOutcome, run_id: str) -> list[dict[str, Any]]:
    """One record per load phase of the cell: its shape, latency percentiles and throughput."""
    events = outcome.events
    records = []
    for start in _named(events, Event.PHASE_START):
        label = start["phase"]
        end = next((e for e in _named(events, Event.PHASE_END) if e["phase"] == label), None)
        done = [e for e in _named(events, Event.REQUEST_END) if e.get("phase") == label]
        failed = [e for e in _named(events, Event.REQUEST_FAILED) if e.get("phase") == label]
        wall = end["t"] - start["t"] if end else None
        records.append({
            "type": "phase", "run_id": run_id, "cell": outcome.cell.id, "phase": label,
            "count": start.get("count"), "concurrency": start.get("concurrency"), "rate": start.get("rate"),
            "ok": len(done), "failed": len(failed), "wall_s": wall,
            "throughput_rps": len(done) / wall if wall else None,
            **stats.latency_percentiles([e["latency_s"] for e in done]),
        })
    return records
