"""Processes that host a model and answer requests over a pipe: spawned or forked.

One message protocol for both, so the subprocess worker, the prefork topology and the
scenario engine's worker pools share one client and one serve loop:
  child -> parent: ("event", None, (name, t, fields)), ("ready"|"failed"|"audio"|"error"|"trimmed", id, payload)
  parent -> child: (id, text, seed), ("trim", id), or None to stop.
Streamed requests (chunks as they are made, and cancel) add the messages of strategies/pipe_stream.py.
With a liveness setting the child also sends ("alive", None, t) from a thread every quarter of it,
separate from readiness: a worker silent for the whole setting is hung (SIGSTOP, a deadlock), and the
parent kills it so the request goes elsewhere instead of waiting forever.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ttsload.strategies import pipe_stream
from ttsload.strategies.base import Audio, AudioStream, Hook, ModelFiles, StrategyError, malloc_trim
from ttsload.strategies.events import Event
from ttsload.strategies.pipe_stream import Pipe, Served

if TYPE_CHECKING:
    from ttsload.strategies.base import Topology


Synthesize = Callable[[str, int], Audio]  # (text, seed) -> audio
Build = Callable[[ModelFiles, Hook, "int | None"], "Topology"]  # (files, hook, threads) -> a topology to start
ServeWith = Callable[[Hook], "Served | Synthesize | None"]  # a forked child's set-up: (hook) -> how it serves


class LockedConn:
    """A pipe end two threads may send on (the serve loop and the heartbeat), one message at a time."""

    def __init__(self, conn: Pipe):
        self.conn, self._lock = conn, threading.Lock()

    def send(self, obj: object) -> None:
        with self._lock:
            self.conn.send(obj)

    def recv(self) -> Any:
        return self.conn.recv()

    def poll(self, timeout: float = 0.0) -> bool:
        return self.conn.poll(timeout)


def start_heartbeat(conn: LockedConn, liveness_s: float | None) -> None:
    """Send ("alive", None, t) every liveness_s / 4 from a daemon thread, until the pipe closes."""
    if not liveness_s:
        return

    def beat() -> None:
        while True:
            time.sleep(liveness_s / 4)
            try:
                conn.send(("alive", None, time.monotonic()))
            except (OSError, ValueError):
                return

    threading.Thread(target=beat, name="ttsload-heartbeat", daemon=True).start()


def serve_loop(served: Served | Synthesize, conn: Pipe, trim: Callable[[], bool] = malloc_trim) -> None:
    """Answer tasks until told to stop; `served` (or a bare `synthesize(text, seed) -> Audio`) makes the
    audio, `trim()` frees retained heap."""
    if not isinstance(served, Served):
        served = Served(served)
    # CLOCK_MONOTONIC: one clock per machine
    conn.send(("ready", None, {"pid": os.getpid(), "t": time.monotonic(), "stream_kind": served.kind}))
    pending = pipe_stream.Pending(conn)
    while (task := pending.recv()) is not None:
        if task[0] == "trim":
            conn.send(("trimmed", task[1], trim()))
            continue
        if task[0] == "stream":
            pipe_stream.serve_stream_task(served.stream_or_whole, conn, pending, *task[1:])
            continue
        if task[0] == "cancel":  # its stream had ended before the cancel came
            continue
        request_id, text, seed = task
        try:
            audio = served.synthesize(text, seed)
            conn.send(("audio", request_id, (audio.wav, audio.sample_rate)))
        except Exception as exc:
            conn.send(("error", request_id, f"{type(exc).__name__}: {exc}"))


def pipe_hook(conn: Pipe, worker: int | None = None) -> Hook:
    """A hook that sends events to the parent, stamped with this process's pid and time."""

    def hook(event: str, t: float | None = None, **fields: object) -> None:
        fields.setdefault("pid", os.getpid())
        if worker is not None:
            fields.setdefault("worker", worker)
        conn.send(("event", None, (event, t if t is not None else time.monotonic(), fields)))

    return hook


def serve_topology(build: Build, files_json: dict[str, Any], threads: int | None, pipe: Connection,
                   worker: int | None = None, liveness_s: float | None = None) -> None:
    """Body of a spawned host: `build(files, hook, threads)` makes a topology; start it and serve.

    `build` reaches the child by pickle (a module-level function or class, found by its module path),
    so this module needs no registry of strategies.
    """
    conn = LockedConn(pipe)
    start_heartbeat(conn, liveness_s)  # beats while loading too; the parent checks them from readiness on
    hook = pipe_hook(conn, worker)
    try:
        topology = build(ModelFiles.from_json(files_json), hook, threads)
        topology.start()
    except Exception as exc:  # reported to the parent, which raises it there
        report_failure(conn, exc)
        return
    serve_loop(Served(topology.synthesize, topology.synthesize_stream, topology.stream_kind), conn, topology.trim)
    topology.close()


def report_failure(conn: Pipe, exc: Exception) -> None:
    """Tell the parent why this host could not start (its wait for "ready" raises the reason)."""
    reason = str(exc) if isinstance(exc, StrategyError) else f"{type(exc).__name__}: {exc}"
    conn.send(("failed", None, reason))


def _child_setup(serve_with: ServeWith, conn: Pipe, worker: int) -> Served | Synthesize | None:
    """Run a forked child's set-up; on failure tell the parent why and return None."""
    try:
        return serve_with(pipe_hook(conn, worker))
    except Exception as exc:
        report_failure(conn, exc)
        return None


class PipeClient:
    """The parent's side of one host: send a task, relay events until the answer comes."""

    poll_s = 0.5

    def __init__(self, conn: Connection, pid: int, hook: Hook, worker: int | None = None,
                 liveness_s: float | None = None):
        self.conn, self.pid, self.hook, self.worker = conn, pid, hook, worker
        self.liveness_s = liveness_s
        self.last_request: int | None = None  # index of the last request it answered (set by its caller)
        self.hung = False
        self.stream_kind = "none"  # what the child's streamed requests are, from its ready message
        self._next_id = 0

    def alive(self) -> bool:
        raise NotImplementedError

    def exit_code(self) -> int | None:
        raise NotImplementedError

    def death(self) -> str:
        return f"worker process {self.pid} died (exit code {self.exit_code()})"

    def wait_for(self, kind: str, request_id: int | None) -> Any:
        return self.wait_for_any((kind,), request_id)[1]

    def wait_for_any(self, kinds: tuple[str, ...], request_id: int | None) -> tuple[str, Any]:
        """Relay events until a message of one of `kinds` for `request_id` comes; returns (kind, payload)."""
        heard = time.monotonic()
        while True:
            try:
                has_message = self.conn.poll(self.poll_s)
                message_kind, message_id, payload = self.conn.recv() if has_message else (None, None, None)
            except (EOFError, OSError):
                has_message = False
            if not has_message:
                if not self.alive():
                    raise StrategyError(self.death()) from None
                # from readiness on: start-up (imports can hold the GIL for seconds) has the cell's deadline,
                # as a startup probe comes before a liveness probe
                if self.liveness_s and "ready" not in kinds and time.monotonic() - heard > self.liveness_s:
                    self._kill_hung(time.monotonic() - heard)
                continue
            heard = time.monotonic()
            if message_kind == "alive":
                continue
            if message_kind == "event":
                event, t, fields = payload
                self.hook(event, t=t, **fields)
            elif message_kind == "failed":
                raise StrategyError(payload)
            elif message_kind == "error" and message_id == request_id:
                raise StrategyError(f"worker {self.pid} failed request {request_id}: {payload}")
            elif message_kind in kinds and message_id == request_id:
                if message_kind == "ready":
                    self.stream_kind = payload.get("stream_kind", "none")
                return message_kind, payload

    def _kill_hung(self, silent_s: float) -> None:
        """A worker silent past its liveness setting is hung: kill it (a stopped process dies on SIGKILL)."""
        self.hung = True
        self.hook(Event.WORKER_HUNG, worker=self.worker, worker_pid=self.pid, silent_s=silent_s,
                  liveness_s=self.liveness_s)
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise StrategyError(f"worker {self.pid} hung: no heartbeat for {silent_s:.1f} s "
                            f"(liveness {self.liveness_s:g} s); killed")

    def _send(self, message: tuple[object, ...]) -> None:
        try:
            self.conn.send(message)
        except OSError:
            raise StrategyError(self.death()) from None

    def next_id(self) -> int:
        request_id, self._next_id = self._next_id, self._next_id + 1
        return request_id

    def send_message(self, message: tuple[object, ...]) -> None:
        self._send(message)

    def synthesize(self, text: str, seed: int) -> Audio:
        request_id = self.next_id()
        self._send((request_id, text, seed))
        wav, rate = self.wait_for("audio", request_id)
        return Audio(wav, rate)

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        """The child's chunks as it makes them; closing the stream early cancels the child's synthesis."""
        return pipe_stream.client_stream(self, text, seed)

    def trim(self) -> bool:
        request_id = self.next_id()
        self._send(("trim", request_id))
        return self.wait_for("trimmed", request_id)


class SpawnedHost(PipeClient):
    """A fresh interpreter (multiprocessing spawn) hosting a whole strategy."""

    def __init__(self, build: Build, files: ModelFiles, hook: Hook, threads: int | None, worker: int | None = None,
                 daemon: bool = True, liveness_s: float | None = None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=serve_topology, name="ttsload-worker", daemon=daemon,
                                   args=(build, files.to_json(), threads, child_conn, worker, liveness_s))
        self.process.start()
        child_conn.close()
        super().__init__(conn, self.process.pid, hook, worker, liveness_s)
        hook(Event.WORKER_SPAWNED, worker_pid=self.pid, worker=worker)

    def alive(self) -> bool:
        return self.process.is_alive()

    def exit_code(self) -> int | None:
        self.process.join(timeout=5)
        return self.process.exitcode

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ForkedHost(PipeClient):
    """A child forked from this process: it shares this process's pages copy-on-write.

    `serve_with(hook) -> synthesize` runs first in the child, with a hook that relays events to the
    parent: a prefork child just sets its thread count and serves the parent's model; a zygote child
    loads its own model there. If it raises, the parent's wait for "ready" raises its reason. With
    `liveness_s`, the child then sends a heartbeat every liveness_s / 4 while it serves.
    """

    def __init__(self, serve_with: ServeWith, hook: Hook, worker: int, liveness_s: float | None = None):
        import multiprocessing

        conn, child_conn = multiprocessing.Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # child: never return into the parent's code
            code = 0
            try:
                conn.close()
                locked = LockedConn(child_conn)
                synthesize = _child_setup(serve_with, locked, worker)
                if synthesize is not None:
                    start_heartbeat(locked, liveness_s)
                    serve_loop(synthesize, locked)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child_conn.close()
        super().__init__(conn, pid, hook, worker, liveness_s)
        self._status: int | None = None
        hook(Event.WORKER_FORKED, worker_pid=pid, worker=worker)

    def alive(self) -> bool:
        if self._status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status is None

    def exit_code(self) -> int | None:
        self.alive()
        return self._status

    def close(self) -> None:
        if self.alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.alive():
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        self.conn.close()


class Dispatcher:
    """Hands each request to an idle host, like a pre-forking server's accept loop; thread-safe.

    Hosts can join while it serves (a scale-out). A host found dead is reported through
    `on_death(host)`, dropped, and the request goes to another host; only when none is left
    does the request fail.
    """

    def __init__(self, hosts: list[PipeClient], on_death: Callable[[PipeClient], None] | None = None,
                 on_retry: Callable[[PipeClient, str], None] | None = None):
        self.hosts: list[PipeClient] = []
        self.pending = 0  # replacements on their way: a request waits for one rather than fail
        self._idle: queue.Queue[PipeClient] = queue.Queue()
        self._on_death = on_death or (lambda host: None)
        self._on_retry = on_retry or (lambda host, reason: None)
        for host in hosts:
            self.add(host)

    def add(self, host: PipeClient) -> None:
        self.hosts.append(host)
        self._idle.put(host)

    def serve(self, text: str, seed: int) -> tuple[Audio, PipeClient]:
        """Synthesize on the first idle host; returns the audio and the host that made it."""
        while True:
            host = self._next_idle()
            try:
                audio = host.synthesize(text, seed)
            except StrategyError as exc:
                if host.alive():
                    self._idle.put(host)
                    raise
                self.hosts.remove(host)
                self._on_death(host)
                self._on_retry(host, str(exc))  # the in-flight request goes to another worker
                continue
            self._idle.put(host)
            return audio, host

    def busy(self) -> list[PipeClient]:
        """The hosts serving a request right now."""
        idle = {id(h) for h in list(self._idle.queue)}
        return [h for h in self.hosts if id(h) not in idle]

    def _next_idle(self) -> PipeClient:
        while True:
            if not self.hosts and not self.pending:
                raise StrategyError("no worker left: every worker process has died")
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue

    def synthesize(self, text: str, seed: int) -> Audio:
        return self.serve(text, seed)[0]

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        return pipe_stream.dispatch_stream(self, text, seed)

    def take(self) -> PipeClient:
        """An idle host, now taken (waits for one); give it back with `release` or `drop` it."""
        return self._next_idle()

    def release(self, host: PipeClient) -> None:
        self._idle.put(host)

    def drop(self, host: PipeClient, retry_reason: str | None = None) -> None:
        """A dead host leaves the pool; with `retry_reason`, its in-flight request goes to another host."""
        if host in self.hosts:
            self.hosts.remove(host)
            self._on_death(host)
        if retry_reason is not None:
            self._on_retry(host, retry_reason)

    def trim(self) -> list[bool]:
        return [host.trim() for host in self.hosts]

    def close(self) -> None:
        for host in self.hosts:
            host.close()
