"""The message the runner hands to one cell process, typed and checked in this one module (like `Plan`).

The runner builds a CellSpec, `bench.procs.spec_fd` carries its JSON to the child, and the cell reads it
back here: the strategy arrives resolved (topology, loader, options), so the cell never parses a strategy
name again, and a malformed message fails as one SpecError naming the field.

Importing this module costs the standard library only: the cell reads its limit probe (`read_limits`)
and measures memcpy and read bandwidth before numpy or torch is imported (bench/cell/limits.py), so the
strategy and model types, whose modules import numpy, are imported only when the whole spec is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ttsload.bench.plan import Plan, PlanError

if TYPE_CHECKING:
    from ttsload.strategies.base import ModelFiles
    from ttsload.strategies.registry import StrategySpec


class SpecError(ValueError):
    """A cell spec that cannot be read: names the field and what is wrong with it."""


@dataclass(frozen=True)
class LimitProbe:
    """What the cell's physical-limit probe measures: memcpy always, the read bandwidth of `read_file` (a
    scratch file, cold page cache only) beside the model's `model_file`; `memcpy_bytes` None: the probe's own."""

    read_file: str | None = None
    model_file: str | None = None
    memcpy_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"read_file": self.read_file, "model_file": self.model_file, "memcpy_bytes": self.memcpy_bytes}

    @classmethod
    def from_json(cls, data: Any) -> LimitProbe:
        if not isinstance(data, dict):
            raise SpecError(f"cell spec.limits: expected an object, got {type(data).__name__}")
        _no_unknown("limits", data, cls)
        for key in ("read_file", "model_file"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise SpecError(f"cell spec.limits.{key}: expected a path or null, got {data[key]!r}")
        size = data.get("memcpy_bytes")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise SpecError(f"cell spec.limits.memcpy_bytes: expected a whole number >= 1 or null, got {size!r}")
        return cls(data.get("read_file"), data.get("model_file"), size)


@dataclass(frozen=True)
class CellSpec:
    """What one cell process runs: `strategy` serving `model` under `plan`, with the request `texts`.

    `threads`: torch threads (None: torch's own); `audio_dir`: where the cell keeps its audio for the
    quality comparison (None: nowhere); `limits`: the probe run before any import (None: no probe).
    """

    strategy: StrategySpec
    model: ModelFiles
    texts: tuple[str, ...]
    plan: Plan = field(default_factory=Plan)
    threads: int | None = None
    audio_dir: str | None = None
    limits: LimitProbe | None = None

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy.to_json(), "model": self.model.to_json(), "texts": list(self.texts),
                "plan": self.plan.to_json(), "threads": self.threads, "audio_dir": self.audio_dir,
                "limits": self.limits.to_json() if self.limits else None}

    @classmethod
    def from_json(cls, data: Any) -> CellSpec:
        """The inverse of to_json; SpecError on a missing, unknown or malformed field."""
        from ttsload.strategies.base import ModelFiles
        from ttsload.strategies.registry import StrategySpec

        if not isinstance(data, dict):
            raise SpecError(f"cell spec: expected an object, got {type(data).__name__}")
        _no_unknown("", data, cls)
        if missing := sorted({"strategy", "model", "texts"} - set(data)):
            raise SpecError(f"cell spec: missing field(s) {', '.join(missing)}")
        texts = data["texts"]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise SpecError("cell spec.texts: expected a non-empty list of strings")
        threads, audio_dir = data.get("threads"), data.get("audio_dir")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise SpecError(f"cell spec.threads: expected a whole number >= 1 or null, got {threads!r}")
        if audio_dir is not None and not isinstance(audio_dir, str):
            raise SpecError(f"cell spec.audio_dir: expected a path or null, got {audio_dir!r}")
        try:
            strategy = StrategySpec.from_json(data["strategy"])
        except ValueError as exc:
            raise SpecError(f"cell spec.{exc}") from None
        try:
            model = ModelFiles.from_json(data["model"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"cell spec.model: not a model's files ({type(exc).__name__}: {exc})") from None
        try:
            plan = Plan.from_json(data.get("plan"))
        except (PlanError, TypeError) as exc:
            raise SpecError(f"cell spec.{exc}" if isinstance(exc, PlanError) else f"cell spec.plan: {exc}") from None
        return cls(strategy, model, tuple(texts), plan, threads, audio_dir, read_limits(data))


def read_limits(data: Any) -> LimitProbe | None:
    """The limit probe of a spec's JSON alone, read with the standard library (before the cell's imports)."""
    if not isinstance(data, dict):
        raise SpecError(f"cell spec: expected an object, got {type(data).__name__}")
    return None if data.get("limits") is None else LimitProbe.from_json(data["limits"])


def _no_unknown(where: str, data: dict[str, Any], cls: type) -> None:
    known = {f.name for f in fields(cls)}
    if unknown := sorted(set(data) - known):
        raise SpecError(f"cell spec{'.' + where if where else ''}: unknown field(s) {', '.join(map(str, unknown))} "
                        f"(known: {', '.join(sorted(known))})")
