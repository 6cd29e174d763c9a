"""The metric registry: every column of summary.csv, declared once.

A metric says its column, label and unit, how it is read from a cell (a function of
`cellview.CellView`), how repetitions aggregate, where it is shown, and whether the regression
gate may use it. summary.csv, the terminal tables, the report's tables and the gate all read
this list; adding a metric is adding one entry here.

Where a metric is shown (`show`): "console" (the end-of-run table), "console-scenario" (the
scenario table), "report-main" (the page's main table), "report" (medians.csv and the per-metric
tables), "report-scenario" (the page's scenario table).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttsload.bench.analysis import stats
from ttsload.bench.analysis.cellview import CellView
from ttsload.strategies.events import Event

CONSOLE, CONSOLE_SCENARIO = "console", "console-scenario"
REPORT_MAIN, REPORT, REPORT_SCENARIO = "report-main", "report", "report-scenario"


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    unit: str
    decimals: int
    read: Callable[[CellView], Any]
    kind: str = "number"  # number | text (identity, digests, flags): only numbers aggregate and gate
    aggregate: str = "median"  # over a cell's repetitions (stats.STATISTICS)
    show: frozenset[str] = frozenset()
    gate: bool = True  # the gate may use it (numbers only)
    signed: bool = False  # printed with its sign (slopes)
    phase: tuple[str | None, str] | None = None  # a cold-start phase: (from event, to event)

    @property
    def header(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def format(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:{'+' if self.signed else ''}.{self.decimals}f}"


def _text(column: str, read: Callable[[CellView], Any]) -> Metric:
    return Metric(column, column, "", 0, read, kind="text", gate=False)


def _phase(column: str, label: str, start: str | None, end: str, decimals: int, *show: str) -> Metric:
    return Metric(column, label, "s", decimals, lambda v: v.span(start, end), show=frozenset(show),
                  phase=(start, end))


def _phase_cpu(column: str, label: str, start: str | None, end: str, *show: str) -> Metric:
    """CPU seconds (user + system, whole tree) over the same span as the wall-time phase."""
    return Metric(column, f"{label} CPU", "s", 3, lambda v: v.cpu_span(start, end), show=frozenset(show))


def _request_cpu_p50(view: CellView) -> float | None:
    """Median CPU seconds the tree spent per request (single cells, where requests do not overlap)."""
    return stats.median([r.get("cpu_s") for r in view.requests])


def _steady(key: str, label: str, *show: str) -> Metric:
    return Metric(f"{key}_mb", label, "MiB", 0, lambda v: v.steady_mb(key), show=frozenset(show))


def _trimmed(key: str, label: str, *show: str) -> Metric:
    """The steady reading taken after malloc_trim(0) in every process: without glibc's retained heap."""
    return Metric(f"{key}_trimmed_mb", f"{label} after trim", "MiB", 0, lambda v: v.trimmed_mb(key),
                  show=frozenset(show))


def _scenario(column: str, label: str, unit: str, decimals: int, read: Callable[[CellView], Any],
              *show: str, signed: bool = False) -> Metric:
    return Metric(column, label, unit, decimals, read, show=frozenset(show), signed=signed)


def _mark_pss_mb(view: CellView, label: str) -> float | None:
    """Whole-tree PSS (MiB) of the first sync reading labelled `label` (the idle kind's before/after_idle)."""
    totals = [r.total["pss"] for e, r in view.outcome.marks if e.get("label") == label and "pss" in r.total]
    return totals[0] / 2**20 if totals else None


def _idle_returned_mb(view: CellView) -> float | None:
    before, after = _mark_pss_mb(view, "before_idle"), _mark_pss_mb(view, "after_idle")
    return before - after if before is not None and after is not None else None


def _reload_request_s(view: CellView) -> float | None:
    """The latency of the first request after the idle unload: the one that paid the reload."""
    return next((r["latency_s"] for r in view.requests if r.get("after_unload")), None)


def _fault(column: str, label: str, unit: str, decimals: int, read: Callable[[CellView], Any]) -> Metric:
    """A fault drill's figure: recorded and reported, never gated (a drill's recovery is no regression signal)."""
    return Metric(column, label, unit, decimals, read, gate=False)


def _digest(view: CellView) -> str | None:
    """One hash over every request's audio: equal digests mean bit-identical output."""
    if not view.requests:
        return None
    return hashlib.sha256("".join(r["audio_sha256"] for r in view.requests).encode()).hexdigest()[:16]


def _rtf(view: CellView) -> float | None:
    return stats.median([r["latency_s"] / r["audio_s"] for r in view.requests if r["audio_s"] > 0])


def _cold_start_begin(view: CellView) -> str | None:
    """Where a cold start begins: the process start (None), or for a zygote the moment its first worker was
    asked for (the template that was up before is `template_s`). Wall and CPU spans share it."""
    return Event.WORKER_REQUESTED if Event.WORKER_REQUESTED in view.at else None


def _cold_start(view: CellView) -> float | None:
    return view.span(_cold_start_begin(view), Event.FIRST_AUDIO)


def _cold_start_cpu(view: CellView) -> float | None:
    return view.cpu_span(_cold_start_begin(view), Event.FIRST_AUDIO)


def _rate_gbps(view: CellView, start: str, end: str) -> float | None:
    """The loader's files (`file_bytes` of its first load) over a phase of that load, in GB/s (10^9 bytes)."""
    seconds, size = view.span(start, end), view.first(Event.WEIGHTS_DONE).get("file_bytes")
    return size / seconds / 1e9 if seconds and size else None


def _limit_gbps(view: CellView) -> float | None:
    """The physical limit of the weights phase: one read off the device (cold cache), else one memcpy."""
    return view.limits.get("read_gbps" if view.cache == "cold" else "memcpy_gbps")


def _pct_of_limit(view: CellView) -> float | None:
    rate, limit = _rate_gbps(view, Event.CONSTRUCT_DONE, Event.WEIGHTS_DONE), _limit_gbps(view)
    return 100 * rate / limit if rate and limit else None


def _accept(view: CellView) -> float | None:
    """Process start → the server takes requests: `accepting` (async warm-up), else `ready` (loads first)."""
    return view.span(None, Event.ACCEPTING if Event.ACCEPTING in view.at else Event.READY)


def _model_ready(view: CellView) -> float | None:
    """Process start → the model is loaded: `model_ready` (async warm-up), else `ready`."""
    return view.span(None, Event.MODEL_READY if Event.MODEL_READY in view.at else Event.READY)


def _early(view: CellView) -> list[float]:
    """Latencies of the requests that arrived before the model was loaded (async warm-up only)."""
    ready = view.at.get(Event.MODEL_READY)
    if ready is None:
        return []
    arrived = {e["index"]: e["t"] for e in view.named(Event.REQUEST_START)}
    return [r["latency_s"] for r in view.requests if arrived.get(r["index"], ready) < ready]


def _percentile(p: int) -> Callable[[CellView], float | None]:
    return lambda v: stats.latency_percentiles(v.latencies)[f"latency_p{p}_s"]


def _ttfa(p: int) -> Callable[[CellView], float | None]:
    """Time to first audio (bench/analysis/streaming.py) of the requests that recorded one: streamed ones."""
    return lambda v: stats.percentile([r["ttfa_s"] for r in v.requests if r.get("ttfa_s") is not None], p)


def _streamed(view: CellView) -> list[dict[str, Any]]:
    return [r for r in view.requests if r.get("streaming") is not None]


def _streaming(view: CellView) -> bool | None:
    """Most requests streamed (first audio before 90 % of their time); None when no request was timed as a
    stream. The same majority as a serving sweep's step (bench/loadgen/sweep.py)."""
    streamed = _streamed(view)
    return sum(bool(r["streaming"]) for r in streamed) > len(streamed) / 2 if streamed else None


CS, CSS, RM, R, RS = CONSOLE, CONSOLE_SCENARIO, REPORT_MAIN, REPORT, REPORT_SCENARIO
REGISTRY: tuple[Metric, ...] = (
    # identity of the cell and how it ended
    _text("run_id", lambda v: v.run_id),
    _text("strategy", lambda v: v.cell.strategy),
    _text("model", lambda v: v.cell.model_label),
    _text("family", lambda v: v.cell.model.family),
    _text("scenario", lambda v: v.cell.scenario),
    Metric("repeat", "repetition", "", 0, lambda v: v.cell.repeat, gate=False),
    _text("status", lambda v: v.outcome.status),
    _text("reason", lambda v: v.outcome.reason),
    # cold start and its phases
    Metric("cold_start_s", "cold start", "s", 2, _cold_start, show=frozenset({CS, RM, R})),
    _phase("import_s", "imports", None, Event.IMPORTS_DONE, 2, CS),
    _phase("verify_s", "verify", Event.LOAD_START, Event.VERIFY_DONE, 3, CS),
    _phase("construct_s", "construct", Event.VERIFY_DONE, Event.CONSTRUCT_DONE, 3, CS),
    _phase("weights_s", "weights", Event.CONSTRUCT_DONE, Event.WEIGHTS_DONE, 3, CS),
    _phase("first_audio_s", "first synthesis", Event.WEIGHTS_DONE, Event.FIRST_AUDIO, 2, CS, R),
    # the cell process's lifetime up to its last event: what a shard spends on it (balances --shard)
    Metric("wall_s", "cell wall time", "s", 1, lambda v: max(e["t"] for e in v.events) - v.outcome.t0
           if v.events else None),
    # the same spans in CPU seconds of the tree: what a busy neighbour cannot stretch
    Metric("cold_start_cpu_s", "cold start CPU", "s", 3, _cold_start_cpu, show=frozenset({R})),
    _phase_cpu("import_cpu_s", "imports", None, Event.IMPORTS_DONE),
    _phase_cpu("construct_cpu_s", "construct", Event.VERIFY_DONE, Event.CONSTRUCT_DONE),
    _phase_cpu("weights_cpu_s", "weights", Event.CONSTRUCT_DONE, Event.WEIGHTS_DONE, R),
    _phase_cpu("first_audio_cpu_s", "first synthesis", Event.WEIGHTS_DONE, Event.FIRST_AUDIO),
    Metric("template_s", "zygote template start-up", "s", 2, lambda v: v.span(None, Event.TEMPLATE_READY),
           show=frozenset({CS, R})),
    # memory of the whole process tree after the last request, and peaks
    _steady("rss", "RSS (summed)", R),
    _steady("pss", "PSS (tree)", CS, RM, R),
    _steady("uss", "USS (tree)", CS, RM, R),
    _steady("pss_anon", "anonymous PSS"),
    _steady("pss_file", "file-backed PSS"),
    _trimmed("pss", "PSS (tree)", RM, R),
    _trimmed("uss", "USS (tree)"),
    _trimmed("pss_anon", "anonymous PSS"),
    _trimmed("pss_file", "file-backed PSS"),
    Metric("peak_pss_mb", "peak PSS during load", "MiB", 0, lambda v: v.peak_during_load_mb("pss"),
           show=frozenset({CS, RM, R})),
    Metric("peak_rss_mb", "peak RSS during load", "MiB", 0, lambda v: v.peak_during_load_mb("rss")),
    _steady("rss_hwm", "RSS high-water mark (summed)"),
    Metric("processes", "processes", "", 0, lambda v: len(v.outcome.steady.processes) if v.outcome.steady else None,
           gate=False),
    # serving
    Metric("latency_p50_s", "latency p50", "s", 3, _percentile(50), show=frozenset({CS, CSS, RM, R})),
    Metric("latency_p90_s", "latency p90", "s", 3, _percentile(90), show=frozenset({RM, R})),
    Metric("latency_p99_s", "latency p99", "s", 3, _percentile(99), show=frozenset({CSS, RS})),
    Metric("request_cpu_p50_s", "request CPU p50", "s", 3, _request_cpu_p50, show=frozenset({R})),
    Metric("rtf", "RTF", "", 3, _rtf, show=frozenset({CS, RM, R})),
    # streaming (bench/analysis/streaming.py): per request, as a listener would hear it
    Metric("ttfa_p50_s", "time to first audio p50", "s", 3, _ttfa(50), show=frozenset({R})),
    Metric("ttfa_p95_s", "time to first audio p95", "s", 3, _ttfa(95), show=frozenset({R})),
    Metric("underruns", "underruns", "", 0, lambda v: sum(int(r["underruns"]) for r in _streamed(v)) if _streamed(v)
           else None, gate=False),
    Metric("streaming", "streaming", "", 0, _streaming, kind="text", gate=False),
    _text("stream_kind", lambda v: ",".join(sorted({str(r["stream_kind"]) for r in v.requests if r.get("stream_kind")}))
          or None),
    # readiness: when the server takes requests, when its model is loaded, and what early requests wait
    Metric("accept_s", "time to accept", "s", 2, _accept, show=frozenset({R})),
    Metric("model_ready_s", "time to model ready", "s", 2, _model_ready, show=frozenset({R})),
    Metric("early_latency_s", "latency before ready", "s", 3, lambda v: stats.median(_early(v)),
           show=frozenset({R})),
    Metric("early_requests", "requests before ready", "", 0, lambda v: len(_early(v)) if Event.MODEL_READY in v.at
           else None, gate=False),
    Metric("audio_s", "audio", "s", 2, lambda v: sum(r["audio_s"] for r in v.requests) if v.requests else None),
    Metric("requests", "requests", "", 0, lambda v: len(v.requests), gate=False),
    Metric("loads", "loads", "", 0, lambda v: len(v.named(Event.WEIGHTS_DONE)), show=frozenset({CS, CSS, RS})),
    Metric("torch_threads", "threads", "", 0,
           # a zygote's threads are its template's
           lambda v: (v.first(Event.IMPORTS_DONE) or v.first(Event.TEMPLATE_READY)).get("torch_threads"),
           show=frozenset({CSS}), gate=False),
    _text("cache", lambda v: v.cache),
    _text("allocator", lambda v: v.first(Event.RUNTIME_CONTROLS).get("allocator")),  # as mapped in the cell process
    Metric("int8_fraction", "int8 fraction", "", 3, lambda v: v.first(Event.WEIGHTS_DONE).get("int8_fraction")),
    Metric("bf16_fraction", "bf16 fraction", "", 3, lambda v: v.first(Event.WEIGHTS_DONE).get("bf16_fraction")),
    # the physical limit (bench/cell/limits.py) and the weights phase against it
    Metric("memcpy_gbps", "memcpy bandwidth", "GB/s", 2, lambda v: v.limits.get("memcpy_gbps"), show=frozenset({R}),
           gate=False),
    Metric("read_gbps", "cold read bandwidth", "GB/s", 2, lambda v: v.limits.get("read_gbps"), show=frozenset({R}),
           gate=False),
    Metric("memcpy_mb", "memcpy probe size", "MiB", 0, lambda v: v.limits.get("memcpy_bytes", 0) / 2**20 or None,
           gate=False),
    Metric("read_mb", "read probe size", "MiB", 0, lambda v: v.limits.get("read_bytes", 0) / 2**20 or None,
           gate=False),
    Metric("read_same_device", "read probe on the model's device", "", 0, lambda v: v.limits.get("read_same_device"),
           kind="text", gate=False),
    Metric("limit_probe_s", "limit probe", "s", 2, lambda v: v.limits.get("probe_s"), gate=False),
    Metric("verify_gbps", "verify rate", "GB/s", 2, lambda v: _rate_gbps(v, Event.LOAD_START, Event.VERIFY_DONE),
           show=frozenset({R})),
    Metric("weights_gbps", "weights rate", "GB/s", 2, lambda v: _rate_gbps(v, Event.CONSTRUCT_DONE, Event.WEIGHTS_DONE),
           show=frozenset({RM, R})),
    Metric("weights_pct_of_limit", "weights % of limit", "%", 2, _pct_of_limit, show=frozenset({CS, RM, R})),
    _text("output_digest", _digest),
    Metric("params", "parameters", "M", 1, lambda v: v.first(Event.WEIGHTS_DONE).get("params", 0) / 1e6 or None,
           gate=False),
    Metric("file_mb", "model files", "MiB", 0,
           lambda v: v.first(Event.WEIGHTS_DONE).get("file_bytes", 0) / 2**20 or None,
           gate=False),
    # scenarios: whole-tree totals, readiness, faults, switching
    _scenario("workers", "workers", "", 0, lambda v: v.plan.workers + sum(int(e.get("add", 0))
                                                                        for e in v.named(Event.SCALE_OUT)), CSS, RS),
    _scenario("pss_total_mb", "PSS total", "MiB", 0, lambda v: v.steady_mb("pss"), CSS, RS),
    _scenario("uss_total_mb", "USS total", "MiB", 0, lambda v: v.steady_mb("uss"), CSS, RS),
    _scenario("rss_sum_mb", "RSS sum", "MiB", 0, lambda v: v.steady_mb("rss"), CSS, RS),
    _scenario("peak_pss_total_mb", "peak PSS", "MiB", 0, lambda v: v.peak_mb("pss"), CSS, RS),
    _scenario("ready_s", "ready", "s", 2, lambda v: v.span(None, "ready"), CSS, RS),
    _scenario("scaleout_ready_s", "new worker ready", "s", 2, lambda v: v.scale_out["scaleout_ready_s"], CSS, RS),
    _scenario("scaleout_latency_p50_s", "p50 during scale-out", "s", 3,
              lambda v: v.scale_out["scaleout_latency_p50_s"], CSS, RS),
    _scenario("scaleout_requests", "requests during scale-out", "", 0, lambda v: v.scale_out["scaleout_requests"]),
    _scenario("worker_deaths", "worker deaths", "", 0, lambda v: len(v.named(Event.WORKER_DIED)), CSS, RS),
    _scenario("failed_requests", "failed requests", "", 0, lambda v: len(v.named(Event.REQUEST_FAILED))),
    _scenario("evictions", "evictions", "", 0, lambda v: len(v.named(Event.MODEL_EVICT)), CSS, RS),
    _scenario("model_load_s", "load per switch", "s", 3,
              lambda v: stats.median([e["load_s"] for e in v.named(Event.MODEL_LOADED)]), CSS, RS),
    # idle unload (bench/cell/idle_kind.py): trimmed PSS either side of the unload, and what reloading cost
    _scenario("idle_pss_before_mb", "PSS before idle unload", "MiB", 0, lambda v: _mark_pss_mb(v, "before_idle"),
              CSS, RS),
    _scenario("idle_pss_after_mb", "PSS after idle unload", "MiB", 0, lambda v: _mark_pss_mb(v, "after_idle"), CSS, RS),
    _scenario("idle_returned_mb", "idle unload gave back", "MiB", 0, _idle_returned_mb, CSS, RS),
    _scenario("reload_s", "reload", "s", 3,
              lambda v: stats.median([e["load_s"] for e in v.named(Event.MODEL_RELOADED)]), CSS, RS),
    _scenario("reload_request_s", "request after unload", "s", 3, _reload_request_s, CSS, RS),
    # faults (analysis/faults.py): the drill's outcome and what the reliability options did
    _text("fault", lambda v: v.faults.get("fault")),
    _text("survived", lambda v: v.faults.get("survived")),
    _fault("requests_failed", "requests failed", "", 0, lambda v: v.faults.get("requests_failed")),
    _fault("requests_retried", "requests retried", "", 0, lambda v: v.faults.get("requests_retried")),
    _fault("recovery_s", "recovery", "s", 2, lambda v: v.faults.get("recovery_s")),
    _fault("hang_detected_s", "hang detected after", "s", 2, lambda v: v.faults.get("hang_detected_s")),
    _fault("load_retries", "load retries", "", 0, lambda v: v.faults.get("load_retries")),
    _fault("load_fallbacks", "loader fallbacks", "", 0, lambda v: v.faults.get("load_fallbacks")),
    _text("fallback_to", lambda v: v.faults.get("fallback_to")),
    _fault("hung_workers", "hung workers", "", 0, lambda v: v.faults.get("hung_workers")),
    _fault("oom_kills", "OOM kills", "", 0, lambda v: v.faults.get("oom_kills")),
    _fault("memory_limit_mb", "memory limit", "MiB", 0, lambda v: v.faults.get("memory_limit_mb")),
    _fault("cgroup_peak_mb", "peak under the limit", "MiB", 0, lambda v: v.faults.get("cgroup_peak_mb")),
    _text("fault_note", lambda v: v.faults.get("fault_note")),
    # soak: leak after trims, growth between them
    _scenario("leak_mb_per_1k", "leak", "MiB/1k req", 1, lambda v: v.leak["leak_mb_per_1k"], CSS, RS, signed=True),
    _scenario("leak_ci_low", "leak low", "MiB/1k req", 1, lambda v: v.leak["leak_ci_low"], CSS, signed=True),
    _scenario("leak_ci_high", "leak high", "MiB/1k req", 1, lambda v: v.leak["leak_ci_high"], CSS, signed=True),
    Metric("leak_flagged", "leak called", "", 0, lambda v: v.leak["leak_flagged"], kind="text", gate=False),
    _scenario("growth_mb_per_1k", "growth between trims", "MiB/1k req", 1, lambda v: v.leak["growth_mb_per_1k"],
              CSS, RS, signed=True),
    _scenario("trims", "trims", "", 0, lambda v: v.leak["trims"]),
    _scenario("trim_returned_mb", "last trim gave back", "MiB", 0, lambda v: v.leak["trim_returned_mb"], CSS, RS),
    # what measuring cost
    _text("sampler", lambda v: v.plan.sampler),
    _scenario("sampler_cpu_s", "sampler CPU", "s", 3, lambda v: v.outcome.sampler_cpu_s, CSS, RS),
    _scenario("samples", "samples", "", 0, lambda v: len(v.outcome.readings)),
    _scenario("sampler_interval_s", "sampler interval", "s", 3, lambda v: v.sampler_interval_s),
    _scenario("sampler_duty", "sampler duty", "% of a core", 1,
              lambda v: 100 * v.outcome.sampler_cpu_s / v.sampled_s if v.sampled_s and v.outcome.sampler_cpu_s
              is not None else None, CSS, RS),
    # the host's speed just before the cell (bench/harness/hostspeed.py): tells the gate a slower host from slower code
    Metric("host_python_s", "host calibration: Python", "s", 4, lambda v: v.outcome.host_speed.get("python_s")),
    Metric("host_memcopy_s", "host calibration: memory copy", "s", 4, lambda v: v.outcome.host_speed.get("memcopy_s")),
    Metric("host_matmul_s", "host calibration: matmul", "s", 4, lambda v: v.outcome.host_speed.get("matmul_s")),
)

BY_COLUMN: dict[str, Metric] = {m.column: m for m in REGISTRY}
COLUMNS: list[str] = [m.column for m in REGISTRY]
NUMERIC: list[str] = [m.column for m in REGISTRY if m.kind == "number"]
GATEABLE: frozenset[str] = frozenset(m.column for m in REGISTRY if m.kind == "number" and m.gate)
PHASES: tuple[Metric, ...] = tuple(m for m in REGISTRY if m.phase)


def shown(place: str) -> list[Metric]:
    """The metrics shown in one place, in registry order."""
    return [m for m in REGISTRY if place in m.show]
