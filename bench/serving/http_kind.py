"""The http scenario's cell: a real gunicorn + Flask server on loopback, loaded from outside.

The cell process starts gunicorn (its master becomes the measured root, so the load generator,
another child of the cell, is not counted), waits until every worker holds its model, runs each
load phase through a separate `bench.loadgen` process, relays the per-request results as events,
and stops the whole server tree afterwards, also on error.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import psutil

from ttsload.bench.cell.drive import LoadShape
from ttsload.bench.plan import Plan
from ttsload.bench.procs import package_root, python_module
from ttsload.strategies.base import StrategyError

APP = "ttsload.bench.serving.app"
READY_TIMEOUT_S = 600.0  # every worker holds its model by then, or the cell fails
STOP_GRACE_S = 10.0


def run_http(spec: dict[str, Any], plan: Plan, hook: Any) -> None:
    workers = plan.workers
    if plan.preload:
        from ttsload.strategies.registry import resolve

        strategy = resolve(spec["strategy"])
        if not strategy.topology_class.serves_from_resident_model:  # fail before any server starts
            raise StrategyError(f"http --preload needs a topology that serves from a resident model: strategy "
                                f"'{strategy.name}' is {strategy.topology}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))  # loopback only; the kernel picks a free port, no race
    listener.listen(128)
    port = listener.getsockname()[1]
    status_read, status_write = os.pipe()
    server = _start_gunicorn(spec, plan, hook, listener.fileno(), status_write)
    listener.close()  # gunicorn holds its own copy: the cell itself listens on nothing
    os.close(status_write)  # EOF on the status pipe once every server process is gone
    try:
        hook("measure_root", root=server.pid)
        deadline = time.monotonic() + READY_TIMEOUT_S
        pids = _wait_ready(server, status_read, workers, deadline)
        hook("ready", workers=workers, port=port, worker_pids=pids)
        first_index, first_audio = 0, False
        for phase in plan.phases:
            if phase.do != "requests":
                raise StrategyError(f"http plan: unsupported phase {phase.do!r}")
            shape = LoadShape.from_json(phase.to_shape_json())
            first_audio = _run_phase(spec, plan, shape, first_index, port, hook, first_audio, phase.label)
            first_index += shape.count
        hook("requests_done")
        sys.stdin.readline()  # the runner reads steady-state memory, then lets us go
    finally:
        stop(server)
        os.close(status_read)  # after the stop: a worker respawned meanwhile must not hit a closed pipe


def _start_gunicorn(spec: dict[str, Any], plan: Plan, hook: Any, listen_fd: int,
                    status_fd: int) -> subprocess.Popen:
    events_fd = hook.stream.fileno() if hasattr(hook, "stream") else int(sys.argv[2])
    config = {"strategy": spec["strategy"], "model": spec["model"], "threads": plan.threads,
              "preload": bool(plan.preload), "events_fd": events_fd, "status_fd": status_fd}
    # --chdir: gunicorn puts that folder first on sys.path; the one holding ttsload shadows nothing.
    command = [*python_module("gunicorn"), "--config", f"python:{APP}", "--chdir", str(package_root()),
               "--worker-class", "sync", "--workers", str(plan.workers),
               "--timeout", "900", "--graceful-timeout", "5", "--bind", f"fd://{listen_fd}",
               *(["--preload"] if plan.preload else []), f"{APP}:create_app()"]
    env = {**os.environ, "TTSLOAD_HTTP": json.dumps(config)}
    # stdout/stderr inherited: gunicorn's log lands in the cell's log, which the runner keeps.
    return subprocess.Popen(command, pass_fds=(events_fd, status_fd, listen_fd), env=env, stdin=subprocess.DEVNULL)


def _wait_ready(server: subprocess.Popen, status_fd: int, workers: int, deadline: float) -> list[int]:
    """Block until all `workers` workers said they are ready; a dead or late server is a StrategyError."""
    ready: set[int] = set()
    pending = b""
    errors: list[str] = []
    while len(ready) < workers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StrategyError(f"http server: {len(ready)} of {workers} workers ready after the deadline")
        readable, _, _ = select.select([status_fd], [], [], min(remaining, 0.5))
        chunk = os.read(status_fd, 1 << 16) if readable else b""
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            record = json.loads(line)
            if "error" in record:
                errors.append(record["error"])
            elif "ready" in record:
                ready.add(int(record["ready"]))
        if errors:  # a worker (or the preloading master) failed to load: gunicorn halts anyway
            raise StrategyError(f"http server: {errors[0]}")
        if (readable and not chunk) or server.poll() is not None:
            raise StrategyError(f"http server exited (code {server.poll()}) with {len(ready)} of {workers} "
                                f"workers ready")
    return sorted(ready)


def _run_phase(spec: dict[str, Any], plan: Plan, shape: LoadShape, first_index: int, port: int,
               hook: Any, first_audio: bool, label: str = "") -> bool:
    """One load phase through a separate loadgen process; returns whether first_audio was sent."""
    label = label or shape.label
    hook("phase_start", phase=label, count=shape.count, concurrency=shape.concurrency, rate=shape.rate,
         first_index=first_index)
    job = {"port": port, "phase": {"count": shape.count, "concurrency": shape.concurrency, "rate": shape.rate,
                                   "seed": shape.seed},
           "first_index": first_index, "texts": spec["texts"],
           "plan": plan.to_json()}
    loadgen = subprocess.Popen(python_module("ttsload.bench.serving.loadgen", json.dumps(job)), stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    try:
        for line in loadgen.stdout:
            record = json.loads(line)
            if record.get("ok"):
                hook("request_end", index=record["index"], chars=record["chars"], latency_s=record["latency_s"],
                     audio_s=record["audio_s"], audio_sha256=record["audio_sha256"],
                     worker_pid=record["worker_pid"], phase=label)
                if not first_audio:
                    hook("first_audio")
                    first_audio = True
            else:
                hook("request_failed", index=record["index"], error=record.get("error", "unknown"),
                     latency_s=record.get("latency_s"), phase=label)
        code = loadgen.wait()
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait()
    if code != 0:
        raise StrategyError(f"http load generator exited with code {code} in phase {label}")
    hook("phase_end", phase=label)
    return first_audio


def stop(server: subprocess.Popen) -> None:
    """SIGTERM the master, wait a little, then SIGKILL whatever of its tree is left."""
    try:
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    try:  # late-forked descendants too (a worker respawned meanwhile)
        tree += psutil.Process(server.pid).children(recursive=True) if server.poll() is None else []
    except psutil.NoSuchProcess:
        pass
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    server.wait()
    psutil.wait_procs(tree, timeout=5)
