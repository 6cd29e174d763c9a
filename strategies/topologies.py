"""Topologies: where the loaded model lives and how a request reaches it."""

from __future__ import annotations

import gc
import multiprocessing
import threading
import time
from typing import Any

from strategies import coqui
from strategies.base import Audio, Hook, Loader, ModelFiles, StrategyError, Topology


class PerRequest(Topology):
    """The naive server: every request loads the model, synthesizes, and drops it."""

    name = "per_request"
    summary = "load, synthesize and drop the model on every request"

    def start(self) -> None:
        info = coqui.import_runtime(self.threads)
        self.hook("imports_done", **info)

    def synthesize(self, text: str, seed: int) -> Audio:
        model = self.loader.load(self.files, self.hook)
        try:
            return model.synthesize(text, seed)
        finally:
            del model
            gc.collect()


class Resident(Topology):
    """A process-wide singleton loaded at start-up behind a double-checked lock."""

    name = "resident"
    summary = "one resident model per process (singleton, double-checked lock)"

    def __init__(self, loader: Loader, files: ModelFiles, hook: Hook, threads: int | None = None):
        super().__init__(loader, files, hook, threads)
        self._model: coqui.LoadedModel | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        info = coqui.import_runtime(self.threads)
        self.hook("imports_done", **info)
        self.get()

    def get(self) -> coqui.LoadedModel:
        """Return the model, loading it once even when many threads ask at the same moment."""
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    model = self._model = self.loader.load(self.files, self.hook)
        return model

    def synthesize(self, text: str, seed: int) -> Audio:
        return self.get().synthesize(text, seed)

    def close(self) -> None:
        self._model = None
        gc.collect()


def _serve(loader_name: str, files_json: dict[str, Any], threads: int | None, conn: Any) -> None:
    """Body of the worker process: import, load once, then answer tasks until told to stop.

    A plain Pipe, not multiprocessing.Queue: Queue's feeder thread was starved while the worker
    was busy loading, delaying every message by ~0.7 s and inflating the measured first audio.
    """
    import os

    from strategies.base import ModelFiles
    from strategies.registry import make_loader

    def hook(event: str, t: float | None = None, **fields: Any) -> None:
        fields.setdefault("pid", os.getpid())
        conn.send(("event", None, (event, t if t is not None else time.monotonic(), fields)))

    try:
        info = coqui.import_runtime(threads)
        hook("imports_done", **info)
        model = make_loader(loader_name).load(ModelFiles.from_json(files_json), hook)
    except Exception as exc:  # reported to the parent, which raises it there
        reason = str(exc) if isinstance(exc, StrategyError) else f"{type(exc).__name__}: {exc}"
        conn.send(("failed", None, reason))
        return
    conn.send(("ready", None, None))
    while (task := conn.recv()) is not None:
        request_id, text, seed = task
        try:
            audio = model.synthesize(text, seed)
            conn.send(("audio", request_id, (audio.wav, audio.sample_rate)))
        except Exception as exc:
            conn.send(("error", request_id, f"{type(exc).__name__}: {exc}"))


class Worker(Topology):
    """A persistent worker process with a task queue; audio comes back to the caller.

    The calling process never imports torch: its job is the web server's (accept, queue, reply).
    """

    name = "worker"
    summary = "persistent subprocess worker fed by a task queue (audio returned as arrays)"
    poll_s = 0.5

    def __init__(self, loader: Loader, files: ModelFiles, hook: Hook, threads: int | None = None):
        super().__init__(loader, files, hook, threads)
        self._process: Any = None
        self._next_id = 0

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._process = ctx.Process(
            target=_serve,
            args=(self.loader.name, self.files.to_json(), self.threads, child_conn),
            name="ttsload-worker",
            daemon=True,
        )
        self._process.start()
        child_conn.close()
        self.hook("worker_spawned", worker_pid=self._process.pid)
        self._wait_for("ready", None)

    def _wait_for(self, kind: str, request_id: int | None) -> Any:
        """Relay the worker's events until the awaited message; fail if the worker dies."""
        while True:
            try:
                has_message = self._conn.poll(self.poll_s)
                message_kind, message_id, payload = self._conn.recv() if has_message else (None, None, None)
            except (EOFError, OSError):
                has_message = False
            if not has_message:
                if not self._process.is_alive():
                    raise StrategyError(self._death()) from None
                continue
            if message_kind == "event":
                event, t, fields = payload
                self.hook(event, t=t, **fields)
            elif message_kind == "failed":
                raise StrategyError(payload)
            elif message_kind == "error" and message_id == request_id:
                raise StrategyError(f"worker failed request {request_id}: {payload}")
            elif message_kind == kind and message_id == request_id:
                return payload

    def _death(self) -> str:
        self._process.join(timeout=5)
        return f"worker process {self._process.pid} died (exit code {self._process.exitcode})"

    def synthesize(self, text: str, seed: int) -> Audio:
        request_id, self._next_id = self._next_id, self._next_id + 1
        try:
            self._conn.send((request_id, text, seed))
        except OSError:
            raise StrategyError(self._death()) from None
        wav, rate = self._wait_for("audio", request_id)
        return Audio(wav, rate)

    def close(self) -> None:
        if self._process is None:
            return
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self._process = None


TOPOLOGIES: dict[str, type[Topology]] = {cls.name: cls for cls in (PerRequest, Resident, Worker)}
