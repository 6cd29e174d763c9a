"""One client measurement of a server: a probe request, then one step or a rate sweep, written as records.

The records go into a results folder's results.jsonl beside a `run` record, so `ttsload report` finds them:
- `serving_request`: one per request (bench.loadgen.sender's fields) with its config, step and rate;
- `serving_step`: one per step (bench.loadgen.sweep.summarize), plus the server tree's PSS after the step when
  the server's pid is known (its process and all its children: the workers are the server too);
- `serving_summary`: one per config: the figures of the step that stands for it (the capacity step of a
  sweep, else the only step), the capacity and its bracket, and capacity per GiB of PSS.
The probe request is sent first and kept apart from the steps: it warms the server (a first request pays
lazy loading) and, when it fails, says in one line why nothing else would work (down, refused, not audio).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ttsload.bench.analysis.serving import GENERATOR_CPU_GOAL as GENERATOR_CPU_GOAL
from ttsload.bench.harness.probes import read_tree
from ttsload.bench.loadgen.api import Api
from ttsload.bench.loadgen.schedule import Arrivals
from ttsload.bench.loadgen.sender import StepRun, run_step
from ttsload.bench.loadgen.sweep import Sweep, Target, run_sweep, summarize

MB, GIB = 1024 * 1024, 1024**3


@dataclass(frozen=True)
class ClientPlan:
    config: str  # the label this server's results carry (e.g. "uvicorn-2w+eager")
    endpoint: str
    api: Api
    texts: Sequence[str]
    requests: int  # per step
    kind: str  # closed, poisson, gamma
    concurrency: int = 1
    rates: Sequence[float] = ()  # one rate: one open-loop step; several: a sweep
    target: Target | None = None
    shape: float = 0.5
    seed: int = 0
    timeout_s: float = 120.0
    server_pid: int | None = None


class ProbeFailed(RuntimeError):
    """The first request failed: the record is kept, the message is the one line the user sees."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(f"{record.get('error_kind')}: {record.get('error')}")
        self.record = record


def probe(plan: ClientPlan) -> dict[str, Any]:
    run = asyncio.run(run_step(plan.endpoint, plan.api, Arrivals("closed", 1), plan.texts[:1], plan.timeout_s))
    record = run.records[0]
    if not record["ok"]:
        raise ProbeFailed(record)
    return record


def server_pss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    reading = read_tree(pid)
    return reading.total["pss"] / MB if reading.processes else None


def measure(plan: ClientPlan, write: Callable[[list[dict[str, Any]]], None],
            on_request: Callable[[dict[str, Any]], None] = lambda record: None,
            on_step: Callable[[dict[str, Any]], None] = lambda step: None) -> dict[str, Any]:
    """Probe, then the steps; every record is handed to `write` as soon as its step ends. Returns the summary."""
    first = probe(plan)
    write([{"type": "serving_request", "config": plan.config, "step": "probe", **first}])
    steps: list[dict[str, Any]] = []

    def step(rate: float | None) -> dict[str, Any]:
        arrivals = Arrivals(plan.kind, plan.requests, rate=rate, concurrency=plan.concurrency, shape=plan.shape,
                            seed=plan.seed + len(steps))
        run: StepRun = asyncio.run(run_step(plan.endpoint, plan.api, arrivals, _rotated(plan.texts, len(steps)),
                                            plan.timeout_s, on_request))
        summary = summarize(run.records, arrivals.offsets(), run.wall_s, run.cpu_s, plan.target)
        row = {"config": plan.config, "step": len(steps), "kind": plan.kind, "rate": rate,
               "concurrency": plan.concurrency if plan.kind == "closed" else None, "target": _label(plan.target),
               **summary, "pss_mb": server_pss_mb(plan.server_pid)}
        write([{"type": "serving_request", "config": plan.config, "step": row["step"], "rate": rate, **r}
               for r in run.records] + [{"type": "serving_step", **row}])
        steps.append(row)
        on_step(row)
        return row

    sweep: Sweep | None = None
    if plan.kind != "closed" and len(plan.rates) > 1:
        assert plan.target is not None
        sweep = run_sweep(list(plan.rates), plan.target, step)
    else:
        step(plan.rates[0] if plan.rates else None)
    summary = _summary(plan, steps, sweep)
    write([{"type": "serving_summary", **summary}])
    return summary


def _summary(plan: ClientPlan, steps: list[dict[str, Any]], sweep: Sweep | None) -> dict[str, Any]:
    """The figures that stand for this server: the capacity step of a sweep (else its first), or the one step."""
    capacity = sweep.capacity_rps if sweep else None
    chosen = next((s for s in steps if s["rate"] == capacity), steps[0]) if sweep else steps[0]
    pss = max((s["pss_mb"] for s in steps if s.get("pss_mb") is not None), default=None)
    keys = ("ttfa_p50_s", "ttfa_p95_s", "ttfa_p99_s", "latency_p50_s", "latency_p95_s", "latency_p99_s",
            "requests_ok", "requests_failed", "streaming", "streaming_share", "goodput", "generator_cpu_share")
    summary = {"config": plan.config, "endpoint": plan.endpoint, "api": plan.api.name, "kind": plan.kind,
               "step": chosen["step"], "rate": chosen["rate"], **{k: chosen.get(k) for k in keys},
               "generator_cpu_max": max(s["generator_cpu_share"] or 0.0 for s in steps),
               "send_error_p99_max_s": max((s["send_error_p99_s"] or 0.0) for s in steps), "pss_mb": pss,
               "target": _label(plan.target), "target_bound_s": plan.target.bound_s if plan.target else None,
               "target_share": plan.target.percentile / 100 if plan.target else None}
    if sweep is not None:
        summary.update(sweep.to_json())
        summary["capacity_per_gib"] = capacity / (pss * MB / GIB) if capacity and pss else None
    return summary


def _label(target: Target | None) -> str | None:
    return target.label if target else None


def _rotated(texts: Sequence[str], step: int) -> list[str]:
    """Each step starts one text further on, so a short step does not always send the same first texts."""
    shift = step % len(texts)
    return [*texts[shift:], *texts[:shift]]
