"""Inside a scenario's cell process: run its plan (a pool of workers, a model switcher, an HTTP server).

`ttsload.bench.cell` hands over here when the spec's plan is of a kind other than "single". Each kind
reports through the same hook (events to the runner) and ends with `requests_done`, after which it
waits on stdin while the runner reads the steady-state memory.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ttsload.bench.cellspec import CellSpec
from ttsload.bench.plan import TRIMMED_STEADY, Plan
from ttsload.strategies.events import Event

if TYPE_CHECKING:  # strategies.base imports numpy: entry imports this module before its limit probe
    from ttsload.strategies.base import Hook

KINDS = {  # kind -> "module:function(spec, hook)"
    "pool": "ttsload.bench.cell.pool_kind:run_pool",
    "switch": "ttsload.bench.cell.switch_kind:run_switch",
    "http": "ttsload.bench.serving.http_kind:run_http",
}


class CellHook(Protocol):
    """The hook a cell's kinds are handed (entry.EventPipe): a strategy's Hook, plus `sync`, a memory reading
    the runner takes on request while the cell waits."""

    def __call__(self, event: str, t: float | None = None, **fields: Any) -> None: ...

    def sync(self, label: str, **fields: Any) -> None: ...


def run_plan(spec: CellSpec, hook: CellHook) -> None:
    module, _, function = KINDS[spec.plan.kind].partition(":")
    getattr(importlib.import_module(module), function)(spec, hook)


def request_texts(texts: Sequence[str], plan: Plan) -> Any:
    """`text(index)` for the scenario's requests, drawn from the spec's distinct texts.

    "cycle" takes them in order, again and again; "random" draws one per request from a seeded
    generator. Request 0 is always the first (shortest) text, so cold start measures readiness.
    """
    import random

    if plan.order == "cycle":
        return lambda index: texts[index % len(texts)]
    rng = random.Random(plan.order_seed)
    total = plan.request_count
    chosen = [0] + [rng.randrange(len(texts)) for _ in range(max(0, total - 1))]
    return lambda index: texts[chosen[index] if index < len(chosen) else index % len(texts)]


class RequestReporter:
    """Emits a request's `request_end` (and `first_audio` after the first answer), from any thread."""

    def __init__(self, hook: Hook, text: Any):
        import threading

        self.hook, self.text = hook, text
        self._first = threading.Lock()
        self._first_done = False

    def done(self, index: int, text: str, audio: Any, latency_s: float, **fields: Any) -> dict[str, Any]:
        import hashlib

        record = {"chars": len(text), "latency_s": latency_s, "audio_s": audio.seconds,
                  "audio_sha256": hashlib.sha256(audio.wav.tobytes()).hexdigest(), **fields}
        self.hook(Event.REQUEST_END, index=index, **record)
        with self._first:
            first, self._first_done = not self._first_done, True
        if first:
            self.hook(Event.FIRST_AUDIO)
        return record


def steady_then_trimmed(hook: CellHook, trim: Any) -> None:
    """The two steady readings: as served, then after malloc_trim(0) in every process of the tree.

    The first is what a server without trims holds; the second drops what glibc merely retains
    after texts of varied length, so it is the reading that repeats from run to run.
    """
    hook(Event.REQUESTS_DONE, then_trim=True)
    sys.stdin.readline()  # the runner reads steady-state memory, then lets us go
    hook.sync(TRIMMED_STEADY, released=trim())
