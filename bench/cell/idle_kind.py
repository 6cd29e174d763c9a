"""The "idle" scenario kind: serve, let the strategy's `idle_unload=S` timeout pass, then serve again.

It answers what a server's auto-unload really buys: the tree's trimmed memory right before the unload
(`before_idle`) and after it (`after_idle`), and what the next request pays to load again (its latency,
and the `model_reloaded` event's `load_s`). The topology is built as the plain serve builds it, so the
option acts as in a real server: a resident model is dropped in this process, a worker process ends.
Phases run in order: `requests` (one at a time), `idle` (wait for the unload), `trim`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ttsload.bench.cell.reporting import CellHook, RequestReporter, steady_then_trimmed
from ttsload.bench.cellspec import CellSpec
from ttsload.bench.drive import request_texts
from ttsload.strategies.base import StrategyError, request_seed
from ttsload.strategies.events import Event
from ttsload.strategies.idle import KEY

IDLE_BOUND = 10  # wait at most this many times the timeout (and at least a minute) for the unload to happen


def run_idle(spec: CellSpec, hook: CellHook) -> None:
    strategy, plan = spec.strategy, spec.plan
    seconds = strategy.option_map.get(KEY)
    if seconds is None:
        raise StrategyError(f"the idle scenario measures the {KEY}=S option: strategy '{strategy.name}' has none "
                            f"(try '{strategy.name}:{KEY}=2')")
    unloaded = threading.Event()

    def topology_hook(event: str, t: float | None = None, **fields: Any) -> None:
        hook(event, t, **fields)
        if event == Event.IDLE_UNLOAD:
            unloaded.set()

    topology = strategy.build(spec.model, topology_hook, plan.threads)
    reporter = RequestReporter(hook, request_texts(spec.texts, plan))
    try:
        topology.start()
        hook(Event.READY)
        index = 0
        for phase in plan.phases:
            if phase.do == "requests":
                for _ in range(phase.count):
                    text = reporter.text(index)
                    hook(Event.REQUEST_START, index=index)
                    start = time.monotonic()
                    audio = topology.synthesize(text, request_seed(text))
                    reporter.done(index, text, audio, time.monotonic() - start, after_unload=unloaded.is_set())
                    index += 1
            elif phase.do == "idle":
                unloaded.clear()
                hook.sync("before_idle", requests=index, released=topology.trim())
                if not unloaded.wait(max(60.0, IDLE_BOUND * float(seconds))):
                    raise StrategyError(f"no idle unload within {IDLE_BOUND}x {KEY}={seconds}")
                hook.sync("after_idle", requests=index, released=topology.trim())
            elif phase.do == "trim":
                hook.sync("trim", requests=index, released=topology.trim())
        steady_then_trimmed(hook, topology.trim)
    finally:
        topology.close()
