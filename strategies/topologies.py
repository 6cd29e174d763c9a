"""Topologies: where the loaded model lives and how a request reaches it."""

from __future__ import annotations

import functools
import gc
import os
import threading

from ttsload.strategies.base import Audio, Hook, LoadedModel, Loader, ModelFiles, Topology, serve_request
from ttsload.strategies.hosts import Dispatcher, ForkedHost, SpawnedHost


class CheckpointWatch:
    """Says once when the checkpoint on disk is no longer the file verified at load (replaced, deleted): a
    process holding the model keeps serving the verified copy, and the results should say so. One stat()."""

    def __init__(self, files: ModelFiles, hook: Hook):
        self.path, self.hook = files.checkpoint, hook
        self._seen: tuple[int, ...] | None = None
        self._said = False

    def __call__(self) -> None:
        try:
            now = os.stat(self.path)
            seen: tuple[int, ...] | None = (now.st_ino, now.st_size, now.st_mtime_ns)
        except OSError:
            seen = None
        if self._seen is None:
            self._seen = seen
        elif seen != self._seen and not self._said:
            self._said = True
            self.hook("checkpoint_changed", path=str(self.path), exists=seen is not None,
                      serving="the copy verified (sha256) at load")


class PerRequest(Topology):
    """The naive server: every request loads the model, synthesizes, and drops it."""

    name = "per_request"
    summary = "load, synthesize and drop the model on every request"

    def start(self) -> None:
        info = self.loader.runtime_phase(self.threads)
        self.hook("imports_done", **info)

    def synthesize(self, text: str, seed: int) -> Audio:
        model = self.loader.load(self.files, self.hook)
        try:
            return serve_request(model, text, seed)
        finally:
            del model
            gc.collect()


class Resident(Topology):
    """A process-wide singleton loaded at start-up behind a double-checked lock."""

    name = "resident"
    summary = "one resident model per process (singleton, double-checked lock)"
    serves_from_resident_model = True

    def __init__(self, loader: Loader, files: ModelFiles, hook: Hook, threads: int | None = None,
                 workers: int = 1):
        super().__init__(loader, files, hook, threads, workers)
        self._model: LoadedModel | None = None
        self._lock = threading.Lock()
        self._watch = CheckpointWatch(files, hook)

    def start(self) -> None:
        info = self.loader.runtime_phase(self.threads)
        self.hook("imports_done", **info)
        self.get()

    def get(self) -> LoadedModel:
        """Return the model, loading it once even when many threads ask at the same moment."""
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    model = self._model = self.loader.load(self.files, self.hook)
                    self._watch()
        return model

    def synthesize(self, text: str, seed: int) -> Audio:
        model = self.get()
        self._watch()
        return serve_request(model, text, seed)

    def close(self) -> None:
        self._model = None
        gc.collect()


class Worker(Topology):
    """A persistent worker process with a task queue; audio comes back to the caller.

    The calling process never imports torch: its job is the web server's (accept, queue, reply).
    """

    name = "worker"
    summary = "persistent subprocess worker fed by a task queue (audio returned as arrays)"
    serves_from_child_process = True

    def start(self) -> None:
        # The loader instance travels to the child by pickle: no registry lookup by name there.
        self._host = SpawnedHost(functools.partial(Resident, self.loader), self.files, self.hook, self.threads)
        self._host.wait_for("ready", None)

    def synthesize(self, text: str, seed: int) -> Audio:
        return self._host.synthesize(text, seed)

    def trim(self) -> bool:
        returned = [self._host.trim(), super().trim()]  # both run: no short-circuit
        return any(returned)

    def close(self) -> None:
        if getattr(self, "_host", None) is not None:
            self._host.close()
            self._host = None


class Prefork(Topology):
    """Load once in the parent, then fork N workers that share the weights copy-on-write.

    gc.freeze() moves every object created so far out of the collector's reach, so the
    collector's writes to object headers do not un-share the pages that hold them.
    The parent loads with one torch thread: torch's libgomp cannot survive a fork once a
    parallel region has run (the child waits forever on the parent's thread team), so the
    parent must never start one; each child then sets its own thread count. Fork only from
    a fresh process (as the harness's cells are), never from one that already ran torch.
    """

    name = "prefork"
    summary = "parent loads once, gc.freeze(), then forks N workers sharing pages copy-on-write"
    forks_from_loaded_parent = True

    def start(self) -> None:
        info = self.loader.runtime_phase(self.threads)  # children get this count (same float order as others)
        child_threads = info.get("torch_threads") or self.threads
        self.loader.prepare_fork()
        self.hook("imports_done", **info)
        self._model = self.loader.load(self.files, self.hook)
        self._watch = CheckpointWatch(self.files, self.hook)
        self._watch()
        self._child_threads = child_threads
        gc.collect()
        gc.freeze()
        hosts = [self.fork(worker) for worker in range(self.workers)]
        for host in hosts:
            host.wait_for("ready", None)
        self._dispatch = Dispatcher(hosts)

    def fork(self, worker: int, liveness_s: float | None = None) -> ForkedHost:
        """One more child sharing the loaded model (a scale-out forks from the same parent)."""
        after_fork = functools.partial(self.loader.set_threads, self._child_threads) if self._child_threads else None
        return ForkedHost(self._serve, self.hook, after_fork, worker, liveness_s)

    def _serve(self, text: str, seed: int) -> Audio:
        self._watch()
        return serve_request(self._model, text, seed)

    def synthesize(self, text: str, seed: int) -> Audio:
        return self._dispatch.synthesize(text, seed)

    def trim(self) -> bool:
        returned = [*self._dispatch.trim(), super().trim()]
        return any(returned)

    def close(self) -> None:
        if getattr(self, "_dispatch", None) is not None:
            self._dispatch.close()
            self._dispatch = None
        gc.unfreeze()


TOPOLOGIES: dict[str, type[Topology]] = {cls.name: cls for cls in (PerRequest, Resident, Worker, Prefork)}
