"""Per-request streaming metrics from chunk arrival times: one computation for the HTTP client and the
in-process scenarios, so "time to first audio" and "underrun" mean the same thing on both sides.

Input is what a listener sees: for each chunk of audio, when it arrived (seconds since the request was due)
and how many seconds of audio it carries. Bytes that are not audio (a WAV header) are not chunks: the caller
counts only audio, so a server that sends its header at once and the samples at the end is not streaming.

- TTFA: arrival of the first chunk with audio in it.
- Gaps: time between consecutive audio chunks.
- Underrun: a player that starts at the first chunk has played `t - ttfa` seconds by time t and holds
  the audio delivered so far; a chunk that arrives after that buffer ran dry is an underrun (the gap was
  longer than the audio still queued), and the dry time is the stall the listener hears.
- Not streaming: the first audio came at or after 90 % of the total time, i.e. the client waited for
  (nearly) the whole clip, whatever the server calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

NOT_STREAMING_SHARE = 0.9  # first audio at >= this share of the total time: the clip came whole


@dataclass(frozen=True)
class StreamMetrics:
    ttfa_s: float | None  # None when no audio arrived at all
    total_s: float
    audio_s: float
    chunks: int
    max_gap_s: float
    underruns: int
    stall_s: float  # summed time the player's buffer was empty after playback started
    streaming: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stream_metrics(chunks: Sequence[tuple[float, float]], total_s: float) -> StreamMetrics:
    """`chunks`: (arrival seconds since the request was due, audio seconds in the chunk), in arrival order;
    chunks with no audio are ignored. `total_s`: until the response ended (>= the last arrival)."""
    audio = [(t, seconds) for t, seconds in chunks if seconds > 0]
    if not audio:
        return StreamMetrics(None, total_s, 0.0, 0, 0.0, 0, 0.0, False)
    ttfa = audio[0][0]
    delivered = 0.0  # audio seconds received before the current chunk, counted from playback start
    stalled = 0.0  # playback is pushed back by every stall: the player resumes when audio arrives
    underruns, max_gap = 0, 0.0
    previous = ttfa
    for t, seconds in audio:
        max_gap = max(max_gap, t - previous)
        played_until = ttfa + stalled + delivered  # when the buffer runs dry if nothing more comes
        if t > played_until + 1e-9 and delivered > 0:
            underruns += 1
            stalled += t - played_until
        delivered += seconds
        previous = t
    streaming = ttfa < NOT_STREAMING_SHARE * total_s
    return StreamMetrics(ttfa, total_s, delivered, len(audio), max_gap, underruns, stalled, streaming)
