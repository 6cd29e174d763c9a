"""Starting and stopping the http scenario's gunicorn tree: shared by the http cell and `ttsload fuzz-http`.

The server listens on a socket this process binds to 127.0.0.1 on a kernel-chosen port and hands to
gunicorn (`--bind fd://N`), so it is never reachable from outside the machine and no port can race.
Workers are gthread workers: `limits.queue + 1` threads each, so a worker whose admitted requests
all wait for its model still has a thread to refuse the next one at once (400/413/415/503); its one
synthesis thread (bench.serving.guard.Admission) serves the model in turn. gunicorn's own
`--timeout` only reaps a worker whose main loop stops (gthread keeps beating during a request), so a
slow request never kills a worker: the app's request_timeout_s answers it with 504.

What gunicorn would read from the environment to tune itself (GUNICORN_CMD_ARGS, WEB_CONCURRENCY, ...) is
removed from the server's environment, so the server measured is the one the scenario describes; the names
removed are logged and recorded in the cell's `ready` event. gunicorn has no header read timeout for a client
that stalls after its first byte (gthread waits 5 s for the first byte only, then reads blocking), so the
listening socket carries SO_RCVTIMEO/SO_SNDTIMEO = `read_timeout_s`, inherited by every accepted connection:
a client silent that long while its request is read or its response written is disconnected. The master and
its workers die with their parent (PR_SET_PDEATHSIG), so a killed harness leaves no server behind.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.procs import package_root, python_module
from ttsload.strategies.base import ModelFiles, StrategyError
from ttsload.strategies.registry import StrategySpec, resolve

APP = "ttsload.bench.serving.app"
READY_TIMEOUT_S = 600.0  # every worker holds its model by then, or the start fails
STOP_GRACE_S = 10.0
# What gunicorn reads from the environment to change itself: command-line options, the worker count, a port
# to bind, sendfile, trusted proxies, and the fds of a re-exec or of systemd socket activation.
SERVER_TUNING = ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "PORT", "SENDFILE", "FORWARDED_ALLOW_IPS", "GUNICORN_FD",
                 "GUNICORN_PID", "LISTEN_FDS", "LISTEN_PID")


def tuning_variables() -> list[str]:
    """The server-tuning variables set in this environment, which the server will not see."""
    return sorted(name for name in os.environ if name in SERVER_TUNING)


def listen_loopback(read_timeout_s: float | None = None) -> socket.socket:
    """A listening socket on 127.0.0.1, port chosen by the kernel; with `read_timeout_s`, every connection it
    accepts gives up a recv or send that waited that long (the kernel copies both options on accept)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if read_timeout_s is not None:
        whole = int(read_timeout_s)
        value = struct.pack("ll", whole, int((read_timeout_s - whole) * 1e6))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener


def start(config: dict[str, Any], workers: int, limits: HttpLimits, listen_fd: int) -> subprocess.Popen:
    """gunicorn with the app; `config` is the app's settings (bench.serving.app: strategy, model, threads,
    preload, events_fd, status_fd). Its log goes to this process's stdout/stderr."""
    config = {**config, "limits": limits.to_json(), "parent_pid": os.getpid()}
    # --chdir: gunicorn puts that folder first on sys.path; the one holding ttsload shadows nothing.
    command = [*python_module("gunicorn"), "--config", f"python:{APP}", "--chdir", str(package_root()),
               "--worker-class", "gthread", "--threads", str(limits.threads),
               "--worker-connections", str(limits.threads + 1), "--workers", str(workers),
               "--timeout", "900", "--graceful-timeout", "5", "--bind", f"fd://{listen_fd}",
               *(["--preload"] if config.get("preload") else []), f"{APP}:create_app()"]
    if dropped := tuning_variables():
        print(f"ttsload: http server: not passed to gunicorn: {', '.join(dropped)}", file=sys.stderr, flush=True)
    env = {**{k: v for k, v in os.environ.items() if k not in SERVER_TUNING}, "TTSLOAD_HTTP": json.dumps(config)}
    fds = (config["events_fd"], config["status_fd"], listen_fd)
    return subprocess.Popen(command, pass_fds=fds, env=env, stdin=subprocess.DEVNULL)


def wait_ready(server: subprocess.Popen, status_fd: int, workers: int, deadline: float) -> list[int]:
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


def stop(server: subprocess.Popen, graceful: bool = True) -> None:
    """SIGTERM the master (graceful: in-flight requests finish; else SIGQUIT, gunicorn's quick shutdown),
    wait a little, then SIGKILL whatever of its tree is left."""
    try:
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if server.poll() is None:
        server.send_signal(signal.SIGTERM if graceful else signal.SIGQUIT)
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


@dataclass(frozen=True)
class LiveServer:
    """A running server outside any cell (the fuzz test and `ttsload fuzz-http`): its port and master pid."""

    port: int
    process: subprocess.Popen
    worker_pids: list[int]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def serving(strategy: StrategySpec | str, model: ModelFiles, workers: int = 1, limits: HttpLimits | None = None,
            threads: int | None = 1, preload: bool = False) -> Iterator[LiveServer]:
    """The http scenario's server on loopback, ready, stopped (whole tree) on leaving; phase events dropped.

    `strategy` resolved, or a name (resolved here: the app receives it resolved, as a cell does)."""
    if isinstance(strategy, str):
        strategy = resolve(strategy)
    limits = limits or HttpLimits()
    listener = listen_loopback(limits.read_timeout_s)
    port = listener.getsockname()[1]
    status_read, status_write = os.pipe()
    events = os.open(os.devnull, os.O_WRONLY)
    config = {"strategy": strategy.to_json(), "model": model.to_json(), "threads": threads, "preload": preload,
              "events_fd": events, "status_fd": status_write}
    process = start(config, workers, limits, listener.fileno())
    listener.close()
    os.close(status_write)
    os.close(events)
    try:
        pids = wait_ready(process, status_read, workers, time.monotonic() + READY_TIMEOUT_S)
        yield LiveServer(port, process, pids)
    finally:
        stop(process, graceful=False)  # nothing measured here waits on the shutdown
        os.close(status_read)

