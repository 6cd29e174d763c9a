"""What every scenario kind of a cell does the same way: report a request's answer (`request_end`, the first
`first_audio`), and end with the two steady readings. Shared by the kinds and by the plain serve of entry.py."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

from ttsload.bench.analysis.streaming import stream_metrics
from ttsload.bench.plan import TRIMMED_STEADY
from ttsload.strategies.events import Event

if TYPE_CHECKING:  # strategies.base imports numpy: entry imports this module before its limit probe
    from ttsload.strategies.audio import Audio, AudioStream
    from ttsload.strategies.base import Hook


class CellHook(Protocol):
    """The hook a cell's kinds are handed (entry.EventPipe): a strategy's Hook, plus `sync`, a memory reading
    the runner takes on request while the cell waits."""

    def __call__(self, event: str, t: float | None = None, **fields: Any) -> None: ...

    def sync(self, label: str, **fields: Any) -> None: ...


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


def timed_stream(stream: AudioStream, start: float) -> tuple[Audio, dict[str, Any]]:
    """Drain one request's stream, stamping each chunk as it arrives (seconds since `start`, the request's
    start), and return the whole clip and its streaming fields (bench/analysis/streaming.py, the metric the
    HTTP client uses too). `latency_s` is until the last chunk: the whole clip, as for a request not streamed."""
    import time

    from ttsload.strategies.audio import concatenate

    chunks, arrivals = [], []
    for chunk in stream:
        arrivals.append((time.monotonic() - start, chunk.seconds))
        chunks.append(chunk)
    latency = time.monotonic() - start
    measured = stream_metrics(arrivals, latency)
    fields = {"latency_s": latency, "ttfa_s": measured.ttfa_s, "chunks": measured.chunks,
              "max_gap_s": measured.max_gap_s, "underruns": measured.underruns, "stall_s": measured.stall_s,
              "streaming": measured.streaming, "stream_kind": stream.kind}
    return concatenate(chunks), fields


def steady_then_trimmed(hook: CellHook, trim: Any) -> None:
    """The two steady readings: as served, then after malloc_trim(0) in every process of the tree.

    The first is what a server without trims holds; the second drops what glibc merely retains
    after texts of varied length, so it is the reading that repeats from run to run.
    """
    hook(Event.REQUESTS_DONE, then_trim=True)
    sys.stdin.readline()  # the runner reads steady-state memory, then lets us go
    hook.sync(TRIMMED_STEADY, released=trim())
