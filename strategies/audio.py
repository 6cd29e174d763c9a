"""Audio as the contracts pass it: a whole clip, or one request's clip as a stream of chunks.

Free of torch and of the loader contracts, so the serving side (an ASGI app, a pipe client) can hold
audio without importing a model's runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Audio:
    """Synthesized speech: float32 samples in [-1, 1] and their rate."""

    wav: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate


STREAM_KINDS = ("native", "sentence", "none")  # the model streams / chunked by sentence / the whole clip at once


class AudioStream(Iterator[Audio]):
    """One request's audio as chunks in order, and how they are made (`kind`, one of STREAM_KINDS).

    `close()` stops the synthesis at the next chunk boundary (a client that went away); every
    topology's stream honours it, so a cancelled request frees its model or worker process.
    """

    def __init__(self, chunks: Iterable[Audio], kind: str):
        if kind not in STREAM_KINDS:
            raise ValueError(f"stream kind {kind!r} is not one of {', '.join(STREAM_KINDS)}")
        self.kind = kind
        self._chunks = iter(chunks)

    def __next__(self) -> Audio:
        return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class StreamingModel(Protocol):
    """A loaded model that also yields its audio in chunks (base.serve_stream serves it).

    `stream_kind` says how: "native" where the model itself streams (XTTS's inference_stream),
    "sentence" where the family's front end synthesizes sentence by sentence.
    """

    info: dict[str, Any]
    stream_kind: str

    def synthesize(self, text: str, seed: int) -> Audio: ...

    def synthesize_stream(self, text: str, seed: int) -> Iterator[Audio]: ...


def by_sentence(synthesize: Callable[[str, int], Audio], sentences: Iterable[str], seed: int) -> Iterator[Audio]:
    """A "sentence" stream: each sentence synthesized on its own with the request's seed, as a family's
    front end does; sentences with nothing to say are skipped."""
    for sentence in sentences:
        if sentence.strip():
            yield synthesize(sentence.strip(), seed)


def concatenate(chunks: Iterable[Audio]) -> Audio:
    """One clip from a stream's chunks (all at one rate)."""
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no audio chunks to concatenate")
    if len({c.sample_rate for c in chunks}) != 1:
        raise ValueError("audio chunks at different sample rates")
    return Audio(np.concatenate([c.wav for c in chunks]), chunks[0].sample_rate)
