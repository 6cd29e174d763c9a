"""Topologies: where the loaded model lives and how a request reaches it."""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
from collections.abc import Iterator

from ttsload.strategies.base import (
    Audio,
    AudioStream,
    Hook,
    LoadedModel,
    Loader,
    ModelFiles,
    StrategyError,
    Topology,
    malloc_trim,
    model_stream_kind,
    serve_request,
    serve_stream,
)
from ttsload.strategies.events import Event
from ttsload.strategies.hosts import Dispatcher, ForkedHost, Served, SpawnedHost
from ttsload.strategies.idle import IdleTimer


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
            self.hook(Event.CHECKPOINT_CHANGED, path=str(self.path), exists=seen is not None,
                      serving="the copy verified (sha256) at load")


class PerRequest(Topology):
    """The naive server: every request loads the model, synthesizes, and drops it."""

    name = "per_request"
    summary = "load, synthesize and drop the model on every request"

    def start(self) -> None:
        info = self.loader.runtime_phase(self.threads)
        self.hook(Event.IMPORTS_DONE, **info)

    def synthesize(self, text: str, seed: int) -> Audio:
        model = self.loader.load(self.files, self.hook)
        try:
            return serve_request(model, text, seed)
        finally:
            del model
            gc.collect()

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        """Load, stream, drop: the kind is the model's, known only once this request has loaded it."""
        model = self.loader.load(self.files, self.hook)
        stream = serve_stream(model, text, seed)

        def chunks() -> Iterator[Audio]:
            try:
                yield from stream
            finally:
                stream.close()
                gc.collect()

        del model
        return AudioStream(chunks(), stream.kind)


class Resident(Topology):
    """A process-wide singleton loaded at start-up behind a double-checked lock."""

    name = "resident"
    summary = "one resident model per process (singleton, double-checked lock)"
    serves_from_resident_model = True
    idle_unload = True  # `idle_unload=S` (strategies/idle.py): drop the model in-process after S idle seconds
    idle_unload_s: float | None = None

    def __init__(self, loader: Loader, files: ModelFiles, hook: Hook, threads: int | None = None,
                 workers: int = 1):
        super().__init__(loader, files, hook, threads, workers)
        self._model: LoadedModel | None = None
        self._lock = threading.Lock()
        self._watch = CheckpointWatch(files, hook)
        self._unloads = 0
        self._idle: IdleTimer | None = None

    def start(self) -> None:
        info = self.loader.runtime_phase(self.threads)
        self.hook(Event.IMPORTS_DONE, **info)
        self.get()
        if self.idle_unload_s:
            self._idle = IdleTimer(self.idle_unload_s, self._unload)

    def get(self) -> LoadedModel:
        """Return the model, loading it once even when many threads ask at the same moment."""
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    began = time.monotonic()
                    model = self._model = self.loader.load(self.files, self.hook)
                    self._watch()
                    if self._unloads:
                        self.hook(Event.MODEL_RELOADED, load_s=time.monotonic() - began, how="in_process")
        return model

    def _unload(self, idle_s: float) -> None:
        """Drop the model and give its heap back (the idle timer calls this with no request in flight)."""
        with self._lock:
            self._model = None
            self._unloads += 1
        gc.collect()
        self.hook(Event.IDLE_UNLOAD, idle_s=idle_s, how="in_process", trimmed=malloc_trim())

    def synthesize(self, text: str, seed: int) -> Audio:
        if self._idle is None:
            return self._serve(text, seed)
        with self._idle.busy():
            return self._serve(text, seed)

    def _serve(self, text: str, seed: int) -> Audio:
        model = self.get()
        self._watch()
        return serve_request(model, text, seed)

    @property
    def stream_kind(self) -> str:
        return model_stream_kind(self.get())

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        if self._idle is not None:
            return self._idle.hold_stream(lambda: self._serve_stream(text, seed))
        return self._serve_stream(text, seed)

    def _serve_stream(self, text: str, seed: int) -> AudioStream:
        model = self.get()
        self._watch()
        return serve_stream(model, text, seed)

    def close(self) -> None:
        if self._idle is not None:
            self._idle.stop()
            self._idle = None
        self._model = None
        gc.collect()


class AsyncResident(Resident):
    """Resident, but the server accepts at once and warms up in the background.

    `start` returns as soon as the process can take requests (event `accepting`), before torch is
    even imported; a background thread imports the runtime and loads (event `model_ready` when done),
    and a request that arrives before then waits for it. The calling thread takes the loading
    thread's torch thread count before its first synthesis: torch's OpenMP setting is per thread.
    """

    name = "async"
    summary = "resident model loaded in a background thread: accepts at once, early requests wait for the load"
    idle_unload = False  # its get() waits on the one background load: a reload would need another warm-up

    def start(self) -> None:
        self._loaded = threading.Event()
        self._failure: BaseException | None = None
        self._threads_set = threading.local()
        self._torch_threads: int | None = None
        self._warm_up = threading.Thread(target=self._load, name="ttsload-warm-up", daemon=True)
        self.hook(Event.ACCEPTING)
        self._warm_up.start()

    def _load(self) -> None:
        try:
            info = self.loader.runtime_phase(self.threads)
            self._torch_threads = info.get("torch_threads") or self.threads
            self.hook(Event.IMPORTS_DONE, **info)
            self._model = self.loader.load(self.files, self.hook)
            self.hook(Event.MODEL_READY)
        except BaseException as exc:  # re-raised in every request, so the cell records why
            self._failure = exc
        finally:
            self._loaded.set()

    def get(self) -> LoadedModel:
        """The model, once loaded: an early request blocks here until the warm-up ends."""
        self._loaded.wait()
        if self._failure is not None:
            raise StrategyError(f"background load failed: {str(self._failure).splitlines()[0]}") from self._failure
        if self._torch_threads and not getattr(self._threads_set, "done", False):
            self.loader.set_threads(self._torch_threads)
            self._threads_set.done = True
        assert self._model is not None
        return self._model

    def close(self) -> None:
        if getattr(self, "_warm_up", None) is not None:
            self._warm_up.join()
        super().close()


class Worker(Topology):
    """A persistent worker process with a task queue; audio comes back to the caller.

    The calling process never imports torch: its job is the web server's (accept, queue, reply).
    """

    name = "worker"
    summary = "persistent subprocess worker fed by a task queue (audio returned as arrays)"
    serves_from_child_process = True
    idle_unload = True  # `idle_unload=S` (strategies/idle.py): the worker process ends after S idle seconds
    idle_unload_s: float | None = None
    _host: SpawnedHost | None = None
    _idle: IdleTimer | None = None

    def start(self) -> None:
        self._spawn()
        if self.idle_unload_s:
            self._idle = IdleTimer(self.idle_unload_s, self._end_worker)

    def _spawn(self) -> SpawnedHost:
        # The loader instance travels to the child by pickle: no registry lookup by name there.
        self._host = SpawnedHost(functools.partial(Resident, self.loader), self.files, self.hook, self.threads)
        self._host.wait_for("ready", None)
        return self._host

    def _end_worker(self, idle_s: float) -> None:
        """End the worker (the idle timer calls this with no request in flight); the OS takes back all of it."""
        if self._host is not None:
            pid = self._host.pid
            self._host.close()
            self._host = None
            self.hook(Event.IDLE_UNLOAD, idle_s=idle_s, how="worker_exit", worker_pid=pid)

    def _live_host(self) -> SpawnedHost:
        """The worker, spawned again (a reload, with its latency) when idle unload ended it."""
        if self._host is not None:
            return self._host
        began = time.monotonic()
        host = self._spawn()
        self.hook(Event.MODEL_RELOADED, load_s=time.monotonic() - began, how="worker_exit", worker_pid=host.pid)
        return host

    def synthesize(self, text: str, seed: int) -> Audio:
        if self._idle is None:
            return self._live_host().synthesize(text, seed)
        with self._idle.busy():
            return self._live_host().synthesize(text, seed)

    @property
    def stream_kind(self) -> str:
        return self._live_host().stream_kind

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        if self._idle is not None:
            return self._idle.hold_stream(lambda: self._live_host().synthesize_stream(text, seed))
        return self._live_host().synthesize_stream(text, seed)

    def trim(self) -> bool:
        returned = [self._host.trim() if self._host is not None else False, super().trim()]  # both run
        return any(returned)

    def close(self) -> None:
        if self._idle is not None:
            self._idle.stop()
            self._idle = None
        if self._host is not None:
            self._host.close()
            self._host = None


class Forking(Topology):
    """Serves through children forked from this process, each request to an idle one (prefork, zygote).

    Subclasses get the process ready to fork (`start`), then call `serve_through` with the first
    children; `fork(worker)` makes one more (a pool's scale-out).
    """

    def serve_through(self, hosts: list[ForkedHost]) -> None:
        for host in hosts:
            host.wait_for("ready", None)
        self._dispatch = Dispatcher(hosts)

    def synthesize(self, text: str, seed: int) -> Audio:
        return self._dispatch.synthesize(text, seed)

    @property
    def stream_kind(self) -> str:
        return self._dispatch.hosts[0].stream_kind if self._dispatch.hosts else "none"

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        return self._dispatch.synthesize_stream(text, seed)

    def trim(self) -> bool:
        returned = [*self._dispatch.trim(), super().trim()]
        return any(returned)

    def close(self) -> None:
        if getattr(self, "_dispatch", None) is not None:
            self._dispatch.close()
            self._dispatch = None
        gc.unfreeze()


class Prefork(Forking):
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
        self.hook(Event.IMPORTS_DONE, **info)
        self._model = self.loader.load(self.files, self.hook)
        self._watch = CheckpointWatch(self.files, self.hook)
        self._watch()
        self._child_threads = child_threads
        gc.collect()
        gc.freeze()
        self.serve_through([self.fork(worker) for worker in range(self.workers)])

    def fork(self, worker: int, liveness_s: float | None = None) -> ForkedHost:
        """One more child sharing the loaded model (a scale-out forks from the same parent)."""
        served = Served(self._serve, self._serve_stream, model_stream_kind(self._model))
        return ForkedHost(functools.partial(_serve_inherited, self.loader, self._child_threads, served),
                          self.hook, worker, liveness_s)

    def _serve(self, text: str, seed: int) -> Audio:
        """A child's request: say if the checkpoint changed on disk, then serve the inherited, verified copy."""
        self._watch()
        return serve_request(self._model, text, seed)

    def _serve_stream(self, text: str, seed: int) -> AudioStream:
        self._watch()
        return serve_stream(self._model, text, seed)


class Zygote(Forking):
    """A template that has imported the runtime and loaded nothing; every worker is a fork of it that
    loads its own model (any loader; mmap shares the checkpoint's pages) and serves.

    A worker then costs a fork plus a load, not an interpreter start plus imports, and nothing is
    held before traffic asks for it. The template never computes: it sets one torch thread and runs
    no parallel region (libgomp's thread team does not survive a fork), and gc.freeze() keeps the
    collector off the imported modules' pages. Cold start is timed from `worker_requested`; the
    template's own start-up ends at `template_ready`.
    """

    name = "zygote"
    summary = "template imports the runtime and loads nothing; each worker is a fork that loads and serves"
    forks_from_template = True
    serves_from_child_process = True

    def start(self) -> None:
        info = self.loader.runtime_phase(self.threads)  # children get this count (same float order as others)
        self._child_threads = info.get("torch_threads") or self.threads
        self.loader.prepare_fork()
        gc.collect()
        gc.freeze()
        # not `imports_done`: the imports are the template's, no phase of a worker's cold start
        self.hook(Event.TEMPLATE_READY, tasks=task_count(), **info)
        self.serve_through([self.fork(worker) for worker in range(self.workers)])

    def fork(self, worker: int, liveness_s: float | None = None) -> ForkedHost:
        """A new worker: fork the template; the child loads the model and serves."""
        self.hook(Event.WORKER_REQUESTED, worker=worker)
        return ForkedHost(functools.partial(_load_and_serve, self.loader, self._child_threads, self.files),
                          self.hook, worker, liveness_s)


def task_count() -> int:
    """Threads of this process (a template that ran a parallel region would hold its thread team)."""
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()


def _serve_inherited(loader: Loader, threads: int | None, serve: Served, hook: Hook) -> Served:
    """A prefork child: its own thread count, then serve (the parent's `_serve`, on the inherited model)."""
    if threads:
        loader.set_threads(threads)
    return serve


def _load_and_serve(loader: Loader, threads: int | None, files: ModelFiles, hook: Hook) -> Served:
    """A zygote child: its own thread count, load (phase events go to the parent), then serve."""
    if threads:
        loader.set_threads(threads)
    model = loader.load(files, hook)
    return Served(functools.partial(serve_request, model), functools.partial(serve_stream, model),
                  model_stream_kind(model))


TOPOLOGIES: dict[str, type[Topology]] = {cls.name: cls for cls in (PerRequest, Resident, AsyncResident, Worker,
                                                                    Prefork, Zygote)}
