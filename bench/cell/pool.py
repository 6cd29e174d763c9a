"""A pool of N serving processes of one strategy, held the way a pre-forking web server's master holds them.

Each worker is a whole strategy in its own spawned interpreter (`singleton` → N resident models,
`subprocess-worker` → N servers each with its model process), except for `prefork+LOADER`, where
this process loads once and forks every worker from itself, so they share its pages copy-on-write,
and `zygote+LOADER`, where this process imports the runtime only and every forked worker loads.
Workers can be added while requests flow (a scale-out) and killed on purpose (a fault drill); a
worker found dead is reported (which, its pid and exit code, the last request it answered) and the
remaining workers carry on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace

from ttsload.strategies import reliability
from ttsload.strategies.base import Audio, Hook, ModelFiles, StrategyError, Topology, malloc_trim
from ttsload.strategies.events import Event
from ttsload.strategies.hosts import Dispatcher, PipeClient, SpawnedHost
from ttsload.strategies.registry import StrategySpec


class Pool:
    """Supervises its workers when the strategy asks (`liveness=S`, `fallback=LOADER`: strategies/reliability.py):
    a dead or hung worker is replaced, and one the OOM killer took is replaced with the fallback loader."""

    def __init__(self, spec: StrategySpec, files: ModelFiles, hook: Hook, threads: int | None):
        self.spec, self.files, self.hook, self.threads = spec, files, hook, threads
        self.dispatcher = Dispatcher([], on_death=self._died, on_retry=self._retried)
        self._parent: Topology | None = None  # a forking topology whose process (this one) holds the model
        self._next_worker = 0
        self._scale_outs: list[threading.Thread] = []
        options = spec.option_map
        self.liveness_s = float(options["liveness"]) if "liveness" in options else None
        self.fallback = replace(spec, loader=str(options["fallback"]),
                                options=tuple(o for o in spec.options if o[0] != "fallback")) \
            if "fallback" in options else None
        self.supervise = bool(self.liveness_s or self.fallback)
        self._oom_seen = reliability.oom_kills()
        self._lock = threading.Lock()

    def start(self, workers: int) -> None:
        """Bring up the first workers and wait until every one of them is ready."""
        topology = self.spec.topology_class
        if topology.forks_from_loaded_parent or topology.forks_from_template:
            parent = self.spec.build(self.files, self.hook, self.threads, workers=0)
            self._parent = parent
            parent.start()  # imports (and loads, for prefork) here, forks nobody yet
        try:
            self._wait_ready(self._launch(workers))
        except StrategyError as exc:
            if not self._fall_back("load", str(exc)):
                raise
            self._wait_ready(self._launch(workers - len(self.dispatcher.hosts)))

    def add(self, count: int) -> None:
        """Start `count` more workers now; each joins the dispatcher as soon as it is ready (in the background)."""
        for launched in self._launch(count):
            thread = threading.Thread(target=self._wait_ready, args=([launched], True), name="ttsload-scale-out")
            thread.start()
            self._scale_outs.append(thread)

    def join_scale_outs(self) -> None:
        for thread in self._scale_outs:
            thread.join()
        self._scale_outs.clear()

    def serve(self, index: int, text: str, seed: int) -> tuple[Audio, PipeClient]:
        audio, host = self.dispatcher.serve(text, seed)
        host.last_request = index
        return audio, host

    def kill(self, worker: int) -> None:
        """SIGKILL one worker, as the OOM killer would; the dispatcher finds out when it next uses it."""
        host = self.host(worker)
        os.kill(host.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while host.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.hook(Event.WORKER_KILLED, worker=worker, worker_pid=host.pid)

    def host(self, worker: int) -> PipeClient:
        host = next((h for h in self.dispatcher.hosts if h.worker == worker), None)
        if host is None:
            raise StrategyError(f"no live worker {worker} (workers: "
                                f"{', '.join(str(h.worker) for h in self.dispatcher.hosts) or 'none'})")
        return host

    def trim(self) -> bool:
        """malloc_trim(0) in every worker (and its helpers) and in this process."""
        returned = [*self.dispatcher.trim(), malloc_trim()]
        return any(returned)

    def close(self) -> None:
        self.join_scale_outs()
        self.dispatcher.close()
        if self._parent is not None:
            self._parent.close()

    def _launch(self, count: int) -> list[tuple[PipeClient, float]]:
        launched = []
        for _ in range(count):
            worker, self._next_worker = self._next_worker, self._next_worker + 1
            started = time.monotonic()
            if self._parent is not None:
                liveness = {"liveness_s": self.liveness_s} if self.liveness_s else {}
                host: PipeClient = self._parent.fork(worker, **liveness)
            else:
                # not a daemon: a worker may have children of its own (subprocess-worker's model process)
                host = SpawnedHost(self.spec.build, self.files, self.hook, self.threads, worker, daemon=False,
                                   liveness_s=self.liveness_s)
            launched.append((host, started))
        return launched

    def _wait_ready(self, launched: list[tuple[PipeClient, float]], background: bool = False) -> None:
        """Add each launched worker once ready; in the foreground the first failure is raised after all were seen."""
        failure: StrategyError | None = None
        for host, started in launched:
            try:
                ready = host.wait_for("ready", None)
            except StrategyError as exc:
                self.hook(Event.WORKER_FAILED, worker=host.worker, worker_pid=host.pid, reason=str(exc),
                          exit_code=host.exit_code() if not host.alive() else None)
                host.close()
                failure = failure or exc
                continue
            # the time the worker said it was ready, not when this thread got round to reading it
            self.hook(Event.WORKER_READY, t=ready["t"], worker=host.worker, worker_pid=host.pid,
                      ready_s=ready["t"] - started)
            self.dispatcher.add(host)
        if failure is not None and not background:
            raise failure

    def _died(self, host: PipeClient) -> None:
        self.hook(Event.WORKER_DIED, worker=host.worker, worker_pid=host.pid, exit_code=host.exit_code(),
                  last_request=host.last_request, hung=host.hung)
        if not self.supervise:
            return
        self._fall_back("request", f"worker {host.pid} died (exit code {host.exit_code()})")
        with self._lock:
            self.dispatcher.pending += 1

        def replace_worker() -> None:
            try:
                self._wait_ready(self._launch(1), background=True)
            finally:
                with self._lock:
                    self.dispatcher.pending -= 1
            self.hook(Event.WORKER_REPLACED, worker=host.worker, worker_pid=host.pid)

        thread = threading.Thread(target=replace_worker, name="ttsload-replace")
        thread.start()
        self._scale_outs.append(thread)

    def _retried(self, host: PipeClient, reason: str) -> None:
        self.hook(Event.REQUEST_RETRIED, worker=host.worker, worker_pid=host.pid, reason=reason)

    def _fall_back(self, during: str, reason: str) -> bool:
        """Switch to the fallback loader when the OOM killer has acted in this cgroup since last looked."""
        kills = reliability.oom_kills()
        oom, self._oom_seen = kills > self._oom_seen, kills
        if not oom or self.fallback is None or self._parent is not None or self.spec is self.fallback:
            return False
        self.hook(Event.LOAD_FALLBACK, loader=self.spec.loader, to=self.fallback.loader, during=during,
                  reason=f"OOM killer under the memory limit: {reason}")
        self.spec = self.fallback
        return True
