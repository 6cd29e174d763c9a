"""Strategy names: the five presets, TOPOLOGY+LOADER combinations, and third-party entries.

A third party registers more through the entry-point groups `ttsload.loaders` and
`ttsload.topologies` (each entry a Loader or Topology subclass). Test-only loaders with planted
faults (`testing.py`) exist only when TTSLOAD_TEST_STRATEGIES=1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from ttsload.strategies.base import Hook, Loader, ModelFiles, Topology, UnknownStrategy

__all__ = ["PRESETS", "StrategySpec", "UnknownStrategy", "loaders", "make_loader", "resolve", "topologies"]

PRESETS: dict[str, tuple[str, str]] = {
    "naive": ("per_request", "eager"),
    "singleton": ("resident", "eager"),
    "mmap": ("resident", "mmap"),
    "quantized": ("resident", "int8-bf16"),
    "subprocess-worker": ("worker", "eager"),
}


def _with_entry_points(builtin: dict[str, type], group: str) -> dict[str, type]:
    found = dict(builtin)
    for entry in entry_points(group=group):
        found[entry.name] = entry.load()
    return found


@cache
def loaders() -> dict[str, type[Loader]]:
    from ttsload.strategies.loaders import LOADERS

    found = _with_entry_points(LOADERS, "ttsload.loaders")
    if os.environ.get("TTSLOAD_TEST_STRATEGIES") == "1":  # planted faults for the harness's own tests
        from ttsload.strategies.testing import with_planted_faults

        found = with_planted_faults(found)
    return found


@cache
def topologies() -> dict[str, type[Topology]]:
    from ttsload.strategies.topologies import TOPOLOGIES

    return _with_entry_points(TOPOLOGIES, "ttsload.topologies")


@dataclass(frozen=True)
class StrategySpec:
    """A resolved strategy: the name the user gave and the topology and loader it means."""

    name: str
    topology: str
    loader: str

    @property
    def topology_class(self) -> type[Topology]:
        """What the harness asks about a topology: its capabilities, never its name."""
        return topologies()[self.topology]

    def build(self, files: ModelFiles, hook: Hook, threads: int | None = None, workers: int = 1) -> Topology:
        return self.topology_class(make_loader(self.loader), files, hook, threads, workers)


def make_loader(name: str) -> Loader:
    return loaders()[name]()


def _alias(part: str) -> str:
    return part.strip().replace("-", "_") if part.strip().replace("-", "_") in topologies() else part.strip()


def resolve(name: str) -> StrategySpec:
    """Turn 'naive', 'worker+mmap' or 'mmap+worker' into a StrategySpec, or raise UnknownStrategy."""
    name = name.strip()
    loaders()  # raises on a misconfigured planted fault before any cell starts
    if name in PRESETS:
        return StrategySpec(name, *PRESETS[name])
    parts = [_alias(p) for p in name.split("+")]
    topology = [p for p in parts if p in topologies()]
    loader = [p for p in parts if p in loaders()]
    if len(parts) == 2 and len(topology) == 1 and len(loader) == 1:
        return StrategySpec(name, topology[0], loader[0])
    raise UnknownStrategy(
        f"unknown strategy '{name}': use a preset ({', '.join(PRESETS)}) or TOPOLOGY+LOADER with "
        f"topologies {', '.join(topologies())} and loaders {', '.join(loaders())}"
    )
