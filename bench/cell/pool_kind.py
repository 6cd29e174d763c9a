"""The "pool" scenario kind, inside its cell process: N workers of a strategy, serving phases of load.

Phases run in order: `requests` (closed loop of C clients or Poisson arrivals at λ, optionally
adding K workers once `add_after` requests have finished: a scale-out under load, and optionally
pausing every `trim_every` requests for a trim), `trim` (malloc_trim in every process, with a memory
reading before and after), and `kill_worker`.

Why trims inside a soak: glibc keeps freed heap, so memory climbs request after request with no leak
at all (seen: ~1 GiB per 1000 requests on vits-tiny between trims, all of it given back by malloc_trim). Memory
read right after a trim is what the process really still holds; the trend of its anonymous part is the leak.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from typing import Any

from ttsload.bench import drive
from ttsload.bench.cell import faults
from ttsload.bench.cell.pool import Pool
from ttsload.bench.cell.reporting import CellHook, RequestReporter, steady_then_trimmed
from ttsload.bench.cellspec import CellSpec
from ttsload.bench.plan import Phase
from ttsload.strategies.base import Hook, request_seed
from ttsload.strategies.events import Event


def run_pool(spec: CellSpec, hook: CellHook) -> None:
    plan = spec.plan
    files, scratch = spec.model, None
    if plan.fault in faults.CHECKPOINT_DRILLS:  # the drill damages a copy, never the model home's files
        files, scratch = faults.private_copy(files)
    pool = Pool(spec.strategy, files, hook, plan.threads)
    drill = faults.Drill(plan, pool, files, hook)
    reporter = RequestReporter(hook, drive.request_texts(spec.texts, plan))
    try:
        if plan.fault == "oom":
            hook(Event.FAULT, fault="oom", memory_limit_mb=plan.memory_limit_mb)
        pool.start(plan.workers)
        hook(Event.READY, workers=plan.workers)
        index = 0
        for phase in plan.phases:
            if phase.do == "requests":
                index = _requests(pool, phase, index, reporter, hook, drill.on_progress)
            elif phase.do == "trim":
                _trim(pool, hook, index)
            elif phase.do == "kill_worker":
                pool.kill(phase.worker)
        drill.join()
        steady_then_trimmed(hook, pool.trim)
    finally:
        pool.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _trim(pool: Pool, hook: CellHook, served: int) -> None:
    """malloc_trim everywhere, between two readings (labelled with the requests served so far)."""
    hook.sync("before_trim", requests=served)
    released = pool.trim()
    hook.sync("after_trim", requests=served, released=released)


def _requests(pool: Pool, phase: Phase, first: int, reporter: RequestReporter, hook: Hook,
              on_answered: Any = lambda done: None) -> int:
    shape = drive.LoadShape.from_json(phase.to_shape_json())
    label = phase.label or shape.label
    add, add_after = phase.add_workers, phase.add_after
    every = phase.trim_every or shape.count  # a trim after every `every` requests, if asked

    def scale_out() -> None:
        hook(Event.SCALE_OUT, add=add, phase=label)
        pool.add(add)

    def call(index: int, arrival: float) -> dict[str, Any]:
        text = reporter.text(index)
        hook(Event.REQUEST_START, index=index, phase=label)
        audio, host = pool.serve(index, text, request_seed(text))
        return reporter.done(index, text, audio, time.monotonic() - arrival, phase=label,
                             worker=host.worker, worker_pid=host.pid)

    def on_progress(done: int) -> None:
        on_answered(first + done)
        if add and done == add_after:
            scale_out()

    hook(Event.PHASE_START, phase=label, count=shape.count, concurrency=shape.concurrency, rate=shape.rate)
    if add and add_after == 0:
        scale_out()
    index = first
    while index < first + shape.count:
        chunk = replace(shape, count=min(every, first + shape.count - index))
        offset = index - first
        for record in drive.run(chunk, index, call, lambda done, offset=offset: on_progress(offset + done)):
            if not record["ok"]:
                hook(Event.REQUEST_FAILED, index=record["index"], error=record["error"], phase=label)
        index += chunk.count
        if phase.trim_every:
            _trim(pool, hook, index)
    pool.join_scale_outs()  # a scale-out belongs to its phase: the phase ends when its workers are up
    hook(Event.PHASE_END, phase=label)
    return index
