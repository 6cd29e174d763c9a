"""The http scenario's cell: a real gunicorn + Flask server on loopback, loaded from outside.

The cell process starts gunicorn (its master becomes the measured root, so the load generator,
another child of the cell, is not counted), waits until every worker holds its model, runs each
load phase through a separate `bench.serving.loadgen` process, relays the per-request results as events,
and stops the whole server tree afterwards, also on error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ttsload.bench.cellspec import CellSpec
from ttsload.bench.drive import LoadShape, RequestRecord
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.plan import Plan
from ttsload.bench.procs import python_module, spec_fd
from ttsload.bench.serving import server as server_tree
from ttsload.bench.serving import stacks
from ttsload.strategies.base import Hook, StrategyError
from ttsload.strategies.events import Event

# What the load generator's sender adds to each answered request: time to first audio, the longest gap,
# underruns, whether it streamed, and how late the generator sent it.
STREAM_FIELDS = ("ttfa_s", "max_gap_s", "underruns", "streaming", "send_error_s", "stream_kind")


def run_http(spec: CellSpec, hook: Hook) -> None:
    plan, strategy = spec.plan, spec.strategy
    workers, stack = plan.workers, plan.stack or "flask"
    if stack != "flask":
        stacks.check(stack, strategy, bool(plan.preload))  # fail before any server starts
    elif plan.preload:
        if not strategy.topology_class.serves_from_resident_model:  # fail before any server starts
            raise StrategyError(f"http --preload needs a topology that serves from a resident model: strategy "
                                f"'{strategy.name}' is {strategy.topology}")
    limits = plan.http_limits or HttpLimits()
    listener = server_tree.listen_loopback(limits.read_timeout_s)  # loopback only; the kernel picks a free port
    port = listener.getsockname()[1]
    status_read, status_write = os.pipe()
    events_fd = hook.stream.fileno() if hasattr(hook, "stream") else int(sys.argv[2])
    config = {"strategy": strategy.to_json(), "model": spec.model.to_json(), "threads": plan.threads,
              "preload": bool(plan.preload), "events_fd": events_fd, "status_fd": status_write}
    # stdout/stderr inherited: gunicorn's log lands in the cell's log, which the runner keeps.
    if stack == "flask":
        server = server_tree.start(config, workers, limits, listener.fileno())
    else:
        server = stacks.start(stack, config, workers, limits, listener.fileno())
    listener.close()  # gunicorn holds its own copy: the cell itself listens on nothing
    os.close(status_write)  # EOF on the status pipe once every server process is gone
    try:
        hook(Event.MEASURE_ROOT, root=server.pid)
        deadline = time.monotonic() + server_tree.READY_TIMEOUT_S
        pids = server_tree.wait_ready(server, status_read, stacks.ready_count(stack, workers), deadline)
        hook(Event.READY, workers=workers, port=port, worker_pids=pids, http_limits=limits.to_json(),
             server_env_removed=stacks.tuning_variables(), stack=stack)
        first_index, first_audio = 0, False
        for phase in plan.phases:
            if phase.do != "requests":
                raise StrategyError(f"http plan: unsupported phase {phase.do!r}")
            shape = LoadShape.from_json(phase.to_shape_json())
            first_audio = _run_phase(spec, plan, shape, first_index, port, hook, first_audio, phase.label)
            first_index += shape.count
        hook(Event.REQUESTS_DONE)
        sys.stdin.readline()  # the runner reads steady-state memory, then lets us go
    finally:
        server_tree.stop(server)
        os.close(status_read)  # after the stop: a worker respawned meanwhile must not hit a closed pipe


def _run_phase(spec: CellSpec, plan: Plan, shape: LoadShape, first_index: int, port: int,
               hook: Hook, first_audio: bool, label: str = "") -> bool:
    """One load phase through a separate loadgen process; returns whether first_audio was sent."""
    label = label or shape.label
    hook(Event.PHASE_START, phase=label, count=shape.count, concurrency=shape.concurrency, rate=shape.rate,
         first_index=first_index)
    job = {"port": port, "phase": {"count": shape.count, "concurrency": shape.concurrency, "rate": shape.rate,
                                   "seed": shape.seed},
           "first_index": first_index, "texts": list(spec.texts),
           "plan": plan.to_json()}
    job_fd = spec_fd(job)  # the texts may be many: by descriptor, never in argv
    try:
        loadgen = subprocess.Popen(python_module("ttsload.bench.serving.loadgen", str(job_fd)), stdout=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, pass_fds=(job_fd,))
    finally:
        os.close(job_fd)
    try:
        for line in loadgen.stdout:
            record: RequestRecord = json.loads(line)
            if record.get("ok"):
                streamed = {key: record.get(key) for key in STREAM_FIELDS}  # bench/analysis/streaming.py
                hook(Event.REQUEST_END, index=record["index"], chars=record["chars"], latency_s=record["latency_s"],
                     audio_s=record["audio_s"], audio_sha256=record["audio_sha256"],
                     worker_pid=record["worker_pid"], phase=label, **streamed)
                if not first_audio:
                    hook(Event.FIRST_AUDIO)
                    first_audio = True
            else:
                hook(Event.REQUEST_FAILED, index=record["index"], error=record.get("error", "unknown"),
                     latency_s=record.get("latency_s"), phase=label, status=record.get("status"))
        code = loadgen.wait()
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait()
    if code != 0:
        raise StrategyError(f"http load generator exited with code {code} in phase {label}")
    hook(Event.PHASE_END, phase=label)
    return first_audio

