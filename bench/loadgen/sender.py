"""The async sender: sends one step's requests on its schedule and times each response's audio as it streams.

One event loop and httpx's async client: a thread per in-flight request would cost the generator more CPU
than the requests it times on a small machine, and the generator's CPU is part of what a step reports
(process_time over the step's wall time: all of this process). Every request is timed from when it was due,
so the send error (sent - due) is recorded beside it and the sender's own lateness is visible.
A request that fails (refused connection, timeout, a status other than 200, a body that is not audio, a
connection cut mid-stream) is recorded with its error kind and reason; the step goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ttsload.bench.analysis.streaming import stream_metrics
from ttsload.bench.loadgen.api import Api
from ttsload.bench.loadgen.audio import NotAudio
from ttsload.bench.loadgen.schedule import Arrivals

ERROR_BODY_BYTES = 200  # of a refusal's body, kept as its reason
WAKE_EARLY_S = 0.05  # an open-loop arrival: the long sleep ends this early, the rest in 1 ms steps (`until`)


@dataclass
class StepRun:
    """The records of one step plus what the generator cost: wall and CPU seconds of this process."""

    records: list[dict[str, Any]]
    wall_s: float
    cpu_s: float

    @property
    def generator_cpu_share(self) -> float:
        """CPU seconds per wall second (1.0 = one core busy)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


async def send(client: httpx.AsyncClient, endpoint: str, api: Api, text: str, due: float,
               digest: bool = False) -> dict[str, Any]:
    """One request due at monotonic time `due`; the record's times are seconds since `due`. With `digest`, the
    record also carries the sha256 of the audio bytes (after any WAV header: the http scenario compares it
    across strategies and stacks; it costs the generator CPU, so a plain client run leaves it out)."""
    record: dict[str, Any] = {"chars": len(text), "send_error_s": time.monotonic() - due, "ok": False}
    chunks: list[tuple[float, float]] = []
    body = hashlib.sha256() if digest else None
    try:
        async with client.stream("POST", endpoint, json=api.body(text)) as response:
            record["status"] = response.status_code
            if response.status_code != 200:
                reason = (await response.aread())[:ERROR_BODY_BYTES].decode(errors="replace")
                return _failed(record, due, f"http_{response.status_code}", reason.strip())
            if (worker := response.headers.get("x-worker-pid", "")).isdigit():
                record["worker_pid"] = int(worker)  # the Flask app says which worker served the request
            if kind := response.headers.get("x-stream-kind"):
                record["stream_kind"] = kind  # a server that says how it streams (native, sentence, none)
            counter, received = api.counter(response.headers), 0
            async for data in response.aiter_raw():
                chunks.append((time.monotonic() - due, counter.feed(data)))
                received += len(data)
                if body is not None and counter.format is not None:  # the audio bytes only, not a WAV header
                    body.update(data[max(0, counter.header_bytes - received + len(data)):])
        metrics = stream_metrics(chunks, time.monotonic() - due)
        if metrics.ttfa_s is None:
            return _failed(record, due, "not_audio", "response had no audio")
        record.update(ok=True, **metrics.to_json())
        if body is not None:
            record["audio_sha256"] = body.hexdigest()
    except NotAudio as exc:
        return _failed(record, due, "not_audio", str(exc))
    except httpx.ConnectError as exc:
        return _failed(record, due, "connect", str(exc) or "connection refused")
    except httpx.TimeoutException as exc:
        return _failed(record, due, "timeout", f"{type(exc).__name__} {exc}".strip())
    except httpx.HTTPError as exc:  # the connection cut or garbled mid-response
        return _failed(record, due, "transport", f"{type(exc).__name__}: {exc}")
    return record


def _failed(record: dict[str, Any], due: float, kind: str, reason: str) -> dict[str, Any]:
    record.update(ok=False, error_kind=kind, error=reason.splitlines()[0] if reason else kind,
                  total_s=time.monotonic() - due)
    return record


async def run_step(endpoint: str, api: Api, arrivals: Arrivals, texts: Sequence[str], timeout_s: float,
                   on_done: Callable[[dict[str, Any]], None] = lambda record: None,
                   digest: bool = False) -> StepRun:
    """Send `arrivals.count` requests (texts taken in turn) and wait for all of them; `on_done` sees each
    record as its request ends."""
    if not texts:
        raise ValueError("run_step needs at least one text")
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), limits=limits) as client:

        async def one(index: int, due: float) -> dict[str, Any]:
            record = {"index": index, **await send(client, endpoint, api, texts[index % len(texts)], due, digest)}
            on_done(record)
            return record

        wall, cpu = time.monotonic(), time.process_time()
        if arrivals.kind == "closed":
            records = await _closed(arrivals, one)
        else:
            tasks = []
            for index, offset in enumerate(arrivals.offsets()):
                due = wall + offset
                await until(due)
                tasks.append(asyncio.create_task(one(index, due)))
            records = list(await asyncio.gather(*tasks))
        return StepRun(sorted(records, key=lambda r: r["index"]), time.monotonic() - wall, time.process_time() - cpu)


async def until(due: float) -> None:
    """Sleep until monotonic time `due`: one sleep to WAKE_EARLY_S before it, then steps of at most 1 ms.

    A single long sleep on an idle machine woke 10-30 ms late here (a virtual CPU the host parked), always
    on the arrivals after the longest gaps; the short steps at the end keep the CPU awake for the send.
    """
    while (left := due - time.monotonic()) > 0:
        await asyncio.sleep(left - WAKE_EARLY_S if left > WAKE_EARLY_S else min(left, 0.001))


async def _closed(arrivals: Arrivals, one: Callable[[int, float], Any]) -> list[dict[str, Any]]:
    """C clients; each sends its next request when its last one answered, due the moment it is sent."""
    pending = iter(range(arrivals.count))
    records: list[dict[str, Any]] = []

    async def client() -> None:
        for index in pending:
            records.append(await one(index, time.monotonic()))

    await asyncio.gather(*(client() for _ in range(min(arrivals.concurrency, arrivals.count))))
    return records
