"""Shared types: model files, the event hook, synthesized audio, and the loader/topology contracts."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from ttsload.strategies.coqui import LoadedModel


class Hook(Protocol):
    """Called by strategies at phase boundaries: hook("weights_done", bytes=...).

    `t` (time.monotonic of the process that saw the event) is passed when an event is relayed
    from another process, so the harness keeps the time it really happened.
    """

    def __call__(self, event: str, t: float | None = None, **fields: Any) -> None: ...


def null_hook(event: str, t: float | None = None, **fields: Any) -> None:
    """A hook for callers that do not measure (tests, library use)."""


class StrategyError(Exception):
    """A strategy could not load or serve the model; the message is one line naming what and where."""


@dataclass(frozen=True)
class ModelFiles:
    """A Coqui model on disk plus the sha256 every file must have before it is read."""

    name: str
    config: Path
    checkpoint: Path
    sha256: dict[str, str]  # file name -> expected hex digest
    safetensors: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": str(self.config),
            "checkpoint": str(self.checkpoint),
            "sha256": self.sha256,
            "safetensors": str(self.safetensors) if self.safetensors else None,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelFiles:
        return cls(
            name=data["name"],
            config=Path(data["config"]),
            checkpoint=Path(data["checkpoint"]),
            sha256=dict(data["sha256"]),
            safetensors=Path(data["safetensors"]) if data.get("safetensors") else None,
            meta=dict(data.get("meta") or {}),
        )

    def files(self) -> list[Path]:
        paths = [self.config, self.checkpoint]
        return paths + ([self.safetensors] if self.safetensors else [])


@dataclass(frozen=True)
class Audio:
    """Synthesized speech: float32 samples in [-1, 1] and their rate."""

    wav: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate


class Loader(abc.ABC):
    """How weights reach memory. Subclasses return a model ready to synthesize."""

    name: ClassVar[str]
    summary: ClassVar[str]
    exact: ClassVar[bool] = True  # fp32 weights and compute: output bit-identical to Coqui's own path

    @abc.abstractmethod
    def load(self, files: ModelFiles, hook: Hook) -> LoadedModel:
        """Verify, construct and fill a Coqui model, emitting the phase events."""


class Topology(abc.ABC):
    """Where the loaded model lives and how a request reaches it."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, loader: Loader, files: ModelFiles, hook: Hook, threads: int | None = None,
                 workers: int = 1):
        self.loader = loader
        self.files = files
        self.hook = hook
        self.threads = threads
        self.workers = workers  # serving processes; only multi-process topologies (prefork) use it

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the serving side up (imports, and the load where the topology loads up front)."""

    @abc.abstractmethod
    def synthesize(self, text: str, seed: int) -> Audio:
        """Serve one request; the same (text, seed) must give the same audio for fp32 loaders."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless a topology holds resources
        """Release the model and any helper processes."""

    def trim(self) -> bool:
        """Give freed heap back to the OS in every process of the topology (glibc malloc_trim(0))."""
        from ttsload.strategies.hosts import malloc_trim

        return malloc_trim()

    def __enter__(self) -> Topology:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
