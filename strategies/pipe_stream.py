"""Streaming over a host's pipe (strategies/hosts.py): chunks of one request as they are made, and cancel.

The messages, beside the hosts' request/answer ones:
  parent -> child: ("stream", id, text, seed), then ("cancel", id) if the caller stops listening;
  child -> parent: ("chunk", id, (wav, rate)) per chunk, then ("end", id, {"kind", "chunks", "cancelled"}),
                   or ("error", id, reason).
The child looks for a cancel between chunks, so a cancelled synthesis stops at the next chunk boundary
(a model cannot be interrupted inside one forward pass) and the worker is free for the next request.
The parent waits for that "end" before it hands the worker to anyone else, so a worker is never given
a second request while it still computes the first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ttsload.strategies.audio import Audio, AudioStream
from ttsload.strategies.integrity import StrategyError


class Pipe(Protocol):
    """One end of the pipe between a host and its parent: a multiprocessing Connection, or a hosts.LockedConn
    around one. Messages are the protocol's tuples (pickled, so any picklable value goes)."""

    def send(self, obj: object) -> None: ...

    def recv(self) -> Any: ...

    def poll(self, timeout: float = ...) -> bool: ...


class StreamClient(Protocol):
    """The parent's side of one host as a stream needs it (hosts.PipeClient; this module imports no hosts)."""

    stream_kind: str

    def next_id(self) -> int: ...

    def send_message(self, message: tuple[object, ...]) -> None: ...

    def wait_for(self, kind: str, request_id: int | None) -> Any: ...

    def wait_for_any(self, kinds: tuple[str, ...], request_id: int | None) -> tuple[str, Any]: ...


class StreamHost(Protocol):
    def alive(self) -> bool: ...

    def synthesize_stream(self, text: str, seed: int) -> AudioStream: ...


Host = TypeVar("Host", bound=StreamHost)


class HostPool(Protocol[Host]):
    """Idle hosts to take one from (hosts.Dispatcher): released when its stream ends, dropped when it died."""

    def take(self) -> Host: ...

    def release(self, host: Host) -> None: ...

    def drop(self, host: Host, retry_reason: str | None = None) -> None: ...


@dataclass(frozen=True)
class Served:
    """What a host's serve loop answers with: whole clips, and streams of `kind` (a host that cannot
    stream leaves `stream` unset: its streamed requests get the whole clip as one chunk)."""

    synthesize: Callable[[str, int], Audio]
    stream: Callable[[str, int], AudioStream] | None = None
    kind: str = "none"

    def stream_or_whole(self, text: str, seed: int) -> AudioStream:
        if self.stream is not None:
            return self.stream(text, seed)
        return AudioStream((self.synthesize(text, seed) for _ in range(1)), "none")


class Pending:
    """Messages the child read while it streamed that were not its cancel: the serve loop handles them next."""

    def __init__(self, conn: Pipe):
        self.conn, self.queue = conn, deque()  # type: ignore[var-annotated]

    def recv(self) -> Any:
        return self.queue.popleft() if self.queue else self.conn.recv()


def serve_stream_task(stream: Callable[[str, int], AudioStream], conn: Pipe, pending: Pending,
                      request_id: int, text: str, seed: int) -> None:
    """The child's side of one ("stream", ...) task: send each chunk, stop early on ("cancel", request_id)."""
    sent, cancelled = 0, False
    try:
        chunks = stream(text, seed)
        kind = chunks.kind
        try:
            for audio in chunks:
                conn.send(("chunk", request_id, (audio.wav, audio.sample_rate)))
                sent += 1
                if _cancel_asked(conn, pending, request_id):
                    cancelled = True
                    break
        finally:
            chunks.close()
    except Exception as exc:
        conn.send(("error", request_id, f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("end", request_id, {"kind": kind, "chunks": sent, "cancelled": cancelled}))


def _cancel_asked(conn: Pipe, pending: Pending, request_id: int) -> bool:
    """Read what arrived meanwhile (never blocking): True if it holds this request's cancel."""
    asked = False
    while conn.poll(0):
        message = conn.recv()
        if isinstance(message, tuple) and message[:2] == ("cancel", request_id):
            asked = True
        elif not (isinstance(message, tuple) and message[:1] == ("cancel",)):  # a stale cancel is dropped
            pending.queue.append(message)
    return asked


def client_stream(client: StreamClient, text: str, seed: int) -> AudioStream:
    """The parent's side: an AudioStream of the child's chunks; closing it early cancels the synthesis
    and waits for the child to stop. `client` is a hosts.PipeClient (its `stream_kind` from the ready message)."""
    request_id = client.next_id()
    client.send_message(("stream", request_id, text, seed))

    def chunks() -> Iterator[Audio]:
        finished = False
        try:
            while True:
                try:
                    kind, payload = client.wait_for_any(("chunk", "end"), request_id)
                except Exception:
                    finished = True  # the child answered with an error or died: nothing left to cancel
                    raise
                if kind == "end":
                    finished = True
                    return
                wav, rate = payload
                yield Audio(wav, rate)
        finally:
            if not finished:  # the caller stopped listening (or broke): stop the child, then drain to its end
                _cancel(client, request_id)

    return AudioStream(chunks(), client.stream_kind)


def _cancel(client: StreamClient, request_id: int) -> None:
    try:
        client.send_message(("cancel", request_id))
        client.wait_for("end", request_id)
    except Exception:  # noqa: BLE001 - a dead or failing worker has stopped anyway; its death is seen next time
        pass


def dispatch_stream(dispatcher: HostPool[Host], text: str, seed: int) -> AudioStream:
    """A hosts.Dispatcher's streamed request on the first idle host, which stays taken until the stream
    ends or is closed (a cancel waits for the host to stop). A host that dies before its first chunk is
    replaced as in `Dispatcher.serve`; once audio went out, its death fails the request."""
    while True:
        host = dispatcher.take()
        stream = host.synthesize_stream(text, seed)
        try:
            first = next(stream, None)
        except StrategyError as exc:
            if host.alive():
                dispatcher.release(host)
                raise
            dispatcher.drop(host, str(exc))
            continue
        return AudioStream(_held(dispatcher, host, stream, first), stream.kind)


def _held(dispatcher: HostPool[Host], host: Host, stream: AudioStream, first: Audio | None) -> Iterator[Audio]:
    """The stream's chunks; its host goes back to the pool once the stream has ended or was cancelled."""
    try:
        if first is not None:
            yield first
            yield from stream
    finally:
        stream.close()
        if host.alive():
            dispatcher.release(host)
        else:
            dispatcher.drop(host)
