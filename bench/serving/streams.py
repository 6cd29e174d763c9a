"""The asgi app's admission for streamed syntheses: bounded slots, synthesis threads, and cancel.

An event loop must never run a synthesis: each admitted request runs its stream in a thread of this
process's synthesis pool and hands the chunks to the loop through a queue. At most `limits.queue`
requests are admitted at once (running or waiting for a thread); one more gets 503 with Retry-After,
no audio within `request_timeout_s` gets 504. When the client goes away (or the request times out)
the request is cancelled: a request still waiting for a thread never starts, a running stream is
closed at its next chunk, which for a worker topology stops the worker too. The slot is freed only
when the synthesis has really stopped, so the queue never admits more work than the process holds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.serving.guard import Rejected
from ttsload.strategies.base import Audio, AudioStream


@dataclass
class Counts:
    """What this process's admission did (GET /ready shows it; the disconnect drill reads it)."""

    admitted: int = 0
    finished: int = 0
    cancelled: int = 0
    failed: int = 0
    refused: int = 0
    running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("admitted", "finished", "cancelled", "failed", "refused", "running")}


class Rest:
    """The chunks after the first, as the synthesis thread hands them over; `aclose()` cancels the synthesis
    (a no-op once it ended). An object rather than an async generator: closing a generator that never
    started runs none of its code, and the cancel must happen whenever the response ends."""

    def __init__(self, queue: asyncio.Queue[tuple[str, Any]], cancel: threading.Event, more: bool):
        self.queue, self.cancel, self.more = queue, cancel, more

    def __aiter__(self) -> AsyncIterator[Audio]:
        return self

    async def __anext__(self) -> Audio:
        if not self.more:
            raise StopAsyncIteration
        kind, payload = await self.queue.get()
        if kind == "chunk":
            return payload
        self.more = False
        if kind == "error":
            raise payload
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.more = False
        self.cancel.set()


class Streams:
    """Admission in front of `threads` synthesis threads of this process."""

    def __init__(self, limits: HttpLimits, threads: int):
        self.limits, self.threads = limits, threads
        self.slots = threading.BoundedSemaphore(limits.queue)
        self.counts = Counts()
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:  # made in the serving process (a pool made before a fork has no threads)
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="synthesis")
        return self._pool

    async def open(self, make: Callable[[], AudioStream]) -> tuple[str, Audio | None, Rest]:
        """Admit a request and wait for its first chunk: (stream kind, first chunk, the rest).

        Rejected before any byte of the response: 503 when full, 504 past the timeout; the stream's own
        failure is raised as it is. Leaving the returned iterator early cancels the synthesis.
        """
        if not self.slots.acquire(blocking=False):
            self.counts.add(refused=1)
            raise Rejected(503, f"queue full: {self.limits.queue} requests already admitted by this process",
                           {"Retry-After": str(self.limits.retry_after_s)})
        self.counts.add(admitted=1)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (server shutting down): nobody listens
                pass

        def produce() -> None:
            outcome = "cancelled"
            try:
                if cancel.is_set():  # cancelled while it waited for a thread: never starts
                    return
                self.counts.add(running=1)
                try:
                    stream = make()
                    put(("kind", stream.kind))
                    try:
                        for chunk in stream:
                            put(("chunk", chunk))
                            if cancel.is_set():
                                break
                        else:
                            outcome = "finished"
                    finally:
                        stream.close()
                finally:
                    self.counts.add(running=-1)
                put(("end", None))
            except BaseException as exc:  # noqa: BLE001 - handed to the request, which answers it
                outcome = "failed"
                put(("error", exc))
            finally:
                self.counts.add(**{outcome: 1})
                self.slots.release()

        deadline = loop.time() + self.limits.request_timeout_s
        try:
            self._executor().submit(produce)
        except BaseException:
            self.slots.release()
            raise
        try:
            kind = await self._next(queue, deadline, "kind")
            first = await self._next(queue, deadline, "chunk", "end")
        except BaseException:
            cancel.set()
            raise
        return kind, first, Rest(queue, cancel, first is not None)

    async def _next(self, queue: asyncio.Queue[tuple[str, Any]], deadline: float, *kinds: str) -> Any:
        try:
            kind, payload = await asyncio.wait_for(queue.get(), max(0.0, deadline - asyncio.get_running_loop().time()))
        except asyncio.TimeoutError:
            raise Rejected(504, f"no audio within the server's request timeout of {self.limits.request_timeout_s:g} s",
                           {"Retry-After": str(self.limits.retry_after_s)}) from None
        if kind == "error":
            raise payload
        if kind not in kinds:  # "end" where a chunk was awaited means the stream had none
            return None
        return payload

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
