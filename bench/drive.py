"""Load shapes: closed loop (C clients, each sends its next request when the last one answered)
and open loop (Poisson arrivals at rate λ, whatever the server's state).

Shared by the in-process worker pools and the HTTP load generator, so both drive load the same way, and both
send the same texts (`request_texts`). Standard library only: the load generator never imports numpy or torch.
Open-loop latency is measured from each request's scheduled arrival, not from when a client thread
got round to sending it: a server that falls behind then shows its queueing delay instead of hiding
it (the "coordinated omission" trap of closed-loop tools).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, cast

if TYPE_CHECKING:
    from ttsload.bench.plan import Plan

# call(index, arrival) -> fields of the request's record; it measures latency from `arrival`.
Call = Callable[[int, float], dict[str, Any]]
OPEN_LOOP_THREADS = 64  # in-flight requests an open loop can hold before arrivals wait for a thread


class _Request(TypedDict):
    index: int
    ok: bool


class RequestRecord(_Request, total=False):
    """One request's outcome as a load driver reports it: `run` below (the pool kind reads it) and the http load
    generator's JSON lines (the http kind reads them). `error` when not ok; the rest is what `call` measured."""

    error: str
    latency_s: float
    chars: int
    audio_s: float
    audio_sha256: str
    phase: str
    worker: int
    worker_pid: int
    status: int | None  # the http status of a refused request


@dataclass(frozen=True)
class LoadShape:
    """How `count` requests arrive: `concurrency` clients in a closed loop, or Poisson at `rate` per second."""

    count: int
    concurrency: int = 1
    rate: float | None = None
    seed: int = 0

    @property
    def label(self) -> str:
        return f"rate{self.rate:g}" if self.rate else f"c{self.concurrency}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadShape:
        return cls(int(data["count"]), int(data.get("concurrency") or 1), data.get("rate"), int(data.get("seed", 0)))


def run(shape: LoadShape, first_index: int, call: Call,
        on_progress: Callable[[int], None] = lambda done: None) -> list[RequestRecord]:
    """Send `shape.count` requests (indices first_index...) and return their records in index order.

    A call that raises is recorded as an error for its request; the rest of the load goes on.
    """
    indices = range(first_index, first_index + shape.count)
    done = _Counter(on_progress)

    def one(index: int, arrival: float) -> RequestRecord:
        try:
            record = cast(RequestRecord, {"index": index, "ok": True, **call(index, arrival)})
        except Exception as exc:  # noqa: BLE001 - any failure of one request is that request's record
            record = RequestRecord(index=index, ok=False, error=f"{type(exc).__name__}: {exc}",
                                   latency_s=time.monotonic() - arrival)
        done.add()
        return record

    if shape.rate:
        records = _open_loop(shape, indices, one)
    else:
        with ThreadPoolExecutor(max_workers=shape.concurrency, thread_name_prefix="ttsload-client") as pool:
            records = list(pool.map(lambda index: one(index, time.monotonic()), indices))
    return sorted(records, key=lambda r: r["index"])


def _open_loop(shape: LoadShape, indices: range, one: Callable[[int, float], RequestRecord]) -> list[RequestRecord]:
    rng = random.Random(shape.seed)
    futures = []
    with ThreadPoolExecutor(max_workers=OPEN_LOOP_THREADS, thread_name_prefix="ttsload-arrival") as pool:
        arrival = time.monotonic()
        for index in indices:
            delay = arrival - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, index, arrival))
            arrival += rng.expovariate(shape.rate)
    return [f.result() for f in futures]


class _Counter:
    def __init__(self, on_progress: Callable[[int], None]):
        self._lock = threading.Lock()
        self._done = 0
        self._on_progress = on_progress

    def add(self) -> None:
        with self._lock:
            self._done += 1
            done = self._done
        self._on_progress(done)


def request_texts(texts: Sequence[str], plan: Plan) -> Callable[[int], str]:
    """`text(index)` for the scenario's requests, drawn from the spec's distinct texts.

    "cycle" takes them in order, again and again; "random" draws one per request from a seeded
    generator. Request 0 is always the first (shortest) text, so cold start measures readiness.
    """
    if plan.order == "cycle":
        return lambda index: texts[index % len(texts)]
    rng = random.Random(plan.order_seed)
    total = plan.request_count
    chosen = [0] + [rng.randrange(len(texts)) for _ in range(max(0, total - 1))]
    return lambda index: texts[chosen[index] if index < len(chosen) else index % len(texts)]
