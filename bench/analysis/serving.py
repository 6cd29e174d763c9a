"""The serving records of a results folder (written by bench.loadgen.measure) as tables a report shows.

- the capacity table: one row per server config, with the capacity at its latency target, the failing rate
  above it, the server tree's PSS and capacity per GiB, TTFA and total latency at the capacity step, whether it
  streamed, and the generator's own CPU (a figure measured by a generator above 5 % of a core is suspect);
- the step table: one row per step;
- the decision: which config serves the most per GiB at the target, set against the fastest to first audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeGuard

import pandas as pd

STEP_COLUMNS = ["config", "step", "kind", "rate", "concurrency", "offered_rps", "achieved_rps", "requests",
                "requests_ok", "requests_failed", "errors", "ttfa_p50_s", "ttfa_p95_s", "ttfa_p99_s",
                "latency_p50_s", "latency_p95_s", "latency_p99_s", "underruns", "streaming", "streaming_share",
                "goodput", "target", "target_met", "send_error_p99_s", "generator_cpu_share", "pss_mb"]
SUMMARY_COLUMNS = ["config", "api", "kind", "target", "target_bound_s", "target_share", "capacity_rps",
                   "failing_rps", "reached", "pss_mb", "capacity_per_gib", "ttfa_p50_s", "ttfa_p95_s",
                   "latency_p50_s", "latency_p95_s", "requests_ok", "requests_failed", "streaming",
                   "generator_cpu_max", "send_error_p99_max_s"]
REQUEST_COLUMNS = ["config", "step", "rate", "index", "ok", "ttfa_s", "total_s", "audio_s", "streaming",
                   "underruns", "error_kind", "send_error_s"]
GENERATOR_CPU_GOAL = 0.05  # of one core: above it the load generator competes with the server it measures


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    for column in columns:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    return frame[columns]


@dataclass
class ServingData:
    steps: pd.DataFrame = field(default_factory=lambda: _frame([], STEP_COLUMNS))
    summaries: pd.DataFrame = field(default_factory=lambda: _frame([], SUMMARY_COLUMNS))
    requests: pd.DataFrame = field(default_factory=lambda: _frame([], REQUEST_COLUMNS))

    @classmethod
    def from_records(cls, by_type: dict[str, list[dict[str, Any]]]) -> ServingData:
        # a config measured twice (a resumed or repeated client run): its latest summary stands
        summaries = list({r.get("config"): r for r in by_type.get("serving_summary", [])}.values())
        timed = [r for r in by_type.get("serving_request", []) if r.get("step") != "probe"]
        return cls(_frame(by_type.get("serving_step", []), STEP_COLUMNS), _frame(summaries, SUMMARY_COLUMNS),
                   _frame(timed, REQUEST_COLUMNS))

    def __bool__(self) -> bool:
        return bool(len(self.steps))


def capacity_table(data: ServingData) -> pd.DataFrame:
    rows = []
    for s in data.summaries.to_dict("records"):
        swept = s.get("capacity_rps") is not None or s.get("failing_rps") is not None
        rows.append({
            "config": s["config"], "target": s.get("target") if swept else "-",
            "capacity (req/s)": _capacity(s) if swept else "-",
            "server PSS (MiB)": _fmt(s.get("pss_mb"), "{:.0f}"),
            "req/s per GiB": _fmt(s.get("capacity_per_gib"), "{:.3g}"),
            "TTFA p50 / p95 (s)": f"{_fmt(s.get('ttfa_p50_s'))} / {_fmt(s.get('ttfa_p95_s'))}",
            "total p50 / p95 (s)": f"{_fmt(s.get('latency_p50_s'))} / {_fmt(s.get('latency_p95_s'))}",
            "streaming": "yes" if s.get("streaming") is True else "NOT STREAMING",
            "ok / failed": f"{_int(s.get('requests_ok'))} / {_int(s.get('requests_failed'))}",
            "generator CPU (max)": _cpu(s.get("generator_cpu_max")),
        })
    return pd.DataFrame(rows)


def step_table(data: ServingData) -> pd.DataFrame:
    rows = []
    for s in data.steps.to_dict("records"):
        errors = s.get("errors") if isinstance(s.get("errors"), dict) else {}
        rows.append({
            "config": s["config"], "load": f"{s['rate']:g}/s {s['kind']}" if _number(s.get("rate")) else
            f"closed c{_int(s.get('concurrency'))}",
            "offered / achieved (req/s)": f"{_fmt(s.get('offered_rps'), '{:.3g}')} / "
                                          f"{_fmt(s.get('achieved_rps'), '{:.3g}')}",
            "TTFA p50 / p95 / p99 (s)": " / ".join(_fmt(s.get(f"ttfa_p{p}_s")) for p in (50, 95, 99)),
            "total p50 / p95 / p99 (s)": " / ".join(_fmt(s.get(f"latency_p{p}_s")) for p in (50, 95, 99)),
            "goodput": _fmt(s.get("goodput"), "{:.0%}"),
            "errors": ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "-",
            "streaming": "yes" if s.get("streaming") is True else "NOT STREAMING",
            "send error p99 (ms)": _fmt(_scaled(s.get("send_error_p99_s"), 1000), "{:.1f}"),
            "generator CPU": _cpu(s.get("generator_cpu_share")),
        })
    return pd.DataFrame(rows)


def decision(data: ServingData) -> list[str]:
    """The choice at the target, with its trade-off: the most capacity per GiB (else the most capacity),
    against the config fastest to first audio when that is another one."""
    swept = [s for s in data.summaries.to_dict("records") if _number(s.get("capacity_rps"))]
    if not swept:
        return []
    key = "capacity_per_gib" if all(_number(s.get("capacity_per_gib")) for s in swept) else "capacity_rps"
    best = max(swept, key=lambda s: s[key])
    memory = f" in {best['pss_mb'] / 1024:.2f} GiB" if _number(best.get("pss_mb")) else ""
    amount = f"{best['capacity_rps']:g}" if best.get("reached") is not False else f"at least {best['capacity_rps']:g}"
    notes = [f"For {best['target']} on this machine, **{best['config']}** serves {amount} req/s"
             f"{memory}" + (f" ({best['capacity_per_gib']:.3g} req/s per GiB)" if key == "capacity_per_gib" else "")
             + "."]
    fastest = min((s for s in swept if _number(s.get("ttfa_p95_s"))), key=lambda s: s["ttfa_p95_s"], default=None)
    if fastest is not None and fastest["config"] != best["config"] and _number(best.get("ttfa_p95_s")):
        ratio = best["ttfa_p95_s"] / fastest["ttfa_p95_s"] if fastest["ttfa_p95_s"] > 0 else float("inf")
        trade = f"{fastest['config']} is {ratio:.2g}× faster to first audio (p95 at its capacity step)"
        if _number(fastest.get("pss_mb")) and _number(best.get("pss_mb")) and best["pss_mb"] > 0:
            trade += f" but holds {fastest['pss_mb'] / best['pss_mb']:.2g}× the memory"
        notes.append(trade + ".")
    notes += [f"{s['config']} does not stream: its first audio comes with (nearly) the whole clip."
              for s in data.summaries.to_dict("records") if s.get("streaming") is not True]
    notes += [f"{s['config']}: the load generator used {s['generator_cpu_max']:.0%} of a core at its busiest step "
              "(above 5 %): it competed with the server, so its figures are pessimistic."
              for s in data.summaries.to_dict("records")
              if _number(s.get("generator_cpu_max")) and s["generator_cpu_max"] > GENERATOR_CPU_GOAL]
    return notes


def _capacity(s: dict[str, Any]) -> str:
    low, high = s.get("capacity_rps"), s.get("failing_rps")
    if not _number(low):
        return f"< {high:g} (the first step missed)" if _number(high) else "-"
    return f"{low:g} (misses at {high:g})" if _number(high) else f"≥ {low:g} (not reached)"


def _number(value: object) -> TypeGuard[float]:  # a field of a results line: anything
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _scaled(value: object, factor: float) -> float | None:
    return value * factor if _number(value) else None


def _fmt(value: object, pattern: str = "{:.3g}") -> str:
    return pattern.format(value) if _number(value) else "-"


def _int(value: object) -> str:
    return str(int(value)) if _number(value) else "-"


def _cpu(value: object) -> str:
    return _fmt(value, "{:.1%}") + (" (above 5 %)" if _number(value) and value > GENERATOR_CPU_GOAL else "")
