"""Arrival schedules, fixed before the first request is sent.

Open loop: request i is due at `offsets[i]` seconds after the step starts, whatever the server is doing,
and its latency is measured from that due time; a server that stalls then shows the stall in every
request that waited behind it, instead of the sender politely waiting (coordinated omission).
Poisson: exponential gaps at the mean rate. Gamma: gaps with the same mean and a coefficient of
variation 1/sqrt(shape): shape < 1 is burstier than Poisson (shape 1 is Poisson). Closed loop has no
schedule: C clients each send when their last answer came.
The generator is `random.Random(seed)`: the same seed gives the same offsets on every Python.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ttsload.bench.errors import UsageError

KINDS = ("closed", "poisson", "gamma")


@dataclass(frozen=True)
class Arrivals:
    """How one step's requests arrive: `kind` closed with `concurrency` clients, or open at `rate` per second."""

    kind: str
    count: int
    rate: float | None = None
    concurrency: int = 1
    shape: float = 0.5  # gamma only
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"arrivals: unknown kind '{self.kind}' (one of {', '.join(KINDS)})")
        if self.count < 1:
            raise UsageError(f"arrivals: count must be at least 1, got {self.count}")
        if self.kind != "closed" and not (self.rate and self.rate > 0):
            raise UsageError(f"arrivals: {self.kind} needs a rate above 0, got {self.rate}")
        if self.kind == "closed" and self.concurrency < 1:
            raise UsageError(f"arrivals: concurrency must be at least 1, got {self.concurrency}")
        if self.kind == "gamma" and not self.shape > 0:
            raise UsageError(f"arrivals: gamma shape must be above 0, got {self.shape}")

    @property
    def label(self) -> str:
        return f"c{self.concurrency}" if self.kind == "closed" else f"{self.kind}{self.rate:g}"

    def offsets(self) -> list[float]:
        """Due times in seconds from the step's start; the first request is due at 0. Empty for closed."""
        if self.kind == "closed":
            return []
        assert self.rate is not None
        rng = random.Random(self.seed)
        if self.kind == "poisson":
            gaps = (rng.expovariate(self.rate) for _ in range(self.count - 1))
        else:  # mean shape * scale = 1 / rate
            gaps = (rng.gammavariate(self.shape, 1.0 / (self.shape * self.rate)) for _ in range(self.count - 1))
        offsets, t = [0.0], 0.0
        for gap in gaps:
            t += gap
            offsets.append(t)
        return offsets
