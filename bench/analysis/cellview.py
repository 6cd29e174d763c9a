"""One cell's raw observations, viewed the way the metric registry reads them.

`CellView` computes what several metrics share (first event times, the requests, the steady
reading, the leak fit) once, lazily.
"""

from __future__ import annotations

from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from ttsload.bench.analysis import faults, scenario_summary
from ttsload.bench.plan import TRIMMED_STEADY
from ttsload.strategies.events import Event

if TYPE_CHECKING:
    from ttsload.bench.cells import CellOutcome

MB = 1024 * 1024


class CellView:
    """Read-only accessors over a CellOutcome for the metric registry's readers."""

    def __init__(self, outcome: CellOutcome, run_id: str = "", cache: str = ""):
        self.outcome, self.run_id, self.cache = outcome, run_id, cache
        self.cell, self.plan, self.events = outcome.cell, outcome.cell.plan, outcome.events

    @cached_property
    def at(self) -> dict[str, float]:
        """The time each event was first seen."""
        seen: dict[str, float] = {}
        for event in self.events:
            seen.setdefault(event["event"], event["t"])
        return seen

    def first(self, name: str) -> dict[str, Any]:
        """The fields of the first event called `name` ({} when there is none)."""
        return next((e for e in self.events if e["event"] == name), {})

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    @cached_property
    def faults(self) -> dict[str, Any]:
        """The fault drill's outcome and what the reliability options did (analysis/faults.py)."""
        return faults.facts(self.events, self.outcome.status)

    @cached_property
    def limits(self) -> dict[str, Any]:
        """The cell's physical-limit probe (memcpy, cold read; bench/cell/limits.py), {} when it did not run."""
        return self.first(Event.LIMITS)

    @cached_property
    def start(self) -> float:
        """Where the cell's clock starts: the process start, moved on by the time the limit probe took.

        The probe runs first thing in the process and is no cost of the strategy, so cold start
        and every span from the process start leave it out.
        """
        return self.outcome.t0 + float(self.limits.get("probe_s", 0.0))

    def span(self, start: str | None, end: str) -> float | None:
        """Seconds from event `start` (None: the process start, less the limit probe) to event `end`."""
        begin = self.start if start is None else self.at.get(start)
        return self.at[end] - begin if begin is not None and end in self.at else None

    @cached_property
    def cpu_at(self) -> dict[str, float]:
        """The tree's CPU seconds stamped on each event's first occurrence (bench/cell/cputime.py)."""
        seen: dict[str, float] = {}
        for event in self.events:
            if "cpu" in event:
                seen.setdefault(event["event"], event["cpu"])
        return seen

    @cached_property
    def cpu_start(self) -> float:
        """CPU seconds at the process start, moved on by what the limit probe spent (as `start` is for wall)."""
        if not self.limits or "cpu" not in self.limits:
            return 0.0
        return float(self.limits["cpu"]) - self.cpu_at.get(Event.STARTED, 0.0)

    def cpu_span(self, start: str | None, end: str) -> float | None:
        """CPU seconds of the whole tree from event `start` (None: the process start) to event `end`."""
        begin = self.cpu_start if start is None else self.cpu_at.get(start)
        return self.cpu_at[end] - begin if begin is not None and end in self.cpu_at else None

    @cached_property
    def requests(self) -> list[dict[str, Any]]:
        return sorted(self.named(Event.REQUEST_END), key=lambda e: e["index"])

    @cached_property
    def latencies(self) -> list[float]:
        return [r["latency_s"] for r in self.requests]

    @cached_property
    def steady(self) -> dict[str, int]:
        """Whole-tree totals (bytes) of the reading after the last request ({} when there is none)."""
        return self.outcome.steady.total if self.outcome.steady else {}

    def steady_mb(self, key: str) -> float | None:
        if key == "rss_hwm" and self.limits and not self.limits.get("peak_rss_reset"):
            return None  # the kernel's peak RSS still holds the probe's buffers
        return self.steady[key] / MB if key in self.steady else None

    @cached_property
    def trimmed(self) -> dict[str, int]:
        """Whole-tree totals (bytes) after malloc_trim(0) everywhere, once the steady reading was taken."""
        marks = [r.total for e, r in self.outcome.marks if e.get("label") == TRIMMED_STEADY]
        return marks[-1] if marks else {}

    def trimmed_mb(self, key: str) -> float | None:
        return self.trimmed[key] / MB if key in self.trimmed else None

    @cached_property
    def readings(self) -> list[Any]:
        """The sampled readings without those the limit probe's buffers may be in.

        A reading is stamped when it ends, so one that started during the probe can be stamped just
        after it: the first reading after the probe is dropped too.
        """
        if not self.limits:
            return self.outcome.readings
        end = self.limits["t"]
        begin = end - float(self.limits.get("probe_s", 0.0))
        after = [r.t for r in self.outcome.readings if r.t > end]
        cut = after[0] if after else float("inf")
        return [r for r in self.outcome.readings if r.t < begin or r.t > cut]

    def peak_during_load_mb(self, key: str) -> float | None:
        """Highest sampled total of `key` up to the first audio (all samples when there was none)."""
        end = self.at.get(Event.FIRST_AUDIO, float("inf"))
        readings = [r.total for r in self.readings if r.t <= end and key in r.total] or [
            r.total for r in self.readings if key in r.total]
        values = [t[key] for t in readings]
        return max(values) / MB if values else None

    def peak_mb(self, key: str) -> float | None:
        """Highest sampled total of `key` over the whole cell (cheap RSS-only readings have no PSS)."""
        values = [r.total[key] for r in self.readings if key in r.total]
        return max(values) / MB if values else None

    @cached_property
    def sampled_s(self) -> float | None:
        """How long the sampler ran: first to last timeline reading."""
        readings = self.outcome.readings
        return readings[-1].t - readings[0].t if len(readings) > 1 else None

    @cached_property
    def sampler_interval_s(self) -> float | None:
        from ttsload.bench.analysis.stats import median

        return median([b.t - a.t for a, b in pairwise(self.outcome.readings)])

    @cached_property
    def scale_out(self) -> dict[str, Any]:
        return scenario_summary.scale_out(self.events)

    @cached_property
    def leak(self) -> dict[str, Any]:
        return scenario_summary.leak(self.outcome, self.plan.leak)
