"""Strategy names: the five presets, TOPOLOGY+LOADER combinations, and third-party entries.

Loaders are registered per model family (a name may have one class per family, e.g. `eager` for
Coqui and for Kokoro); the loader a cell uses is picked by its model's family, through the family's
aliases where it has no loader of that name. A third party registers more through the entry-point
groups `ttsload.loaders` and `ttsload.topologies` (each entry a Loader or Topology subclass; a
loader's `family` says which models it loads). Test-only loaders with planted faults (`testing.py`)
exist only when TTSLOAD_TEST_STRATEGIES=1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from ttsload.strategies import idle, reliability
from ttsload.strategies import options as strategy_options
from ttsload.strategies.base import Hook, Loader, ModelFiles, Topology, UnknownStrategy
from ttsload.strategies.families import FAMILIES

__all__ = ["PRESETS", "StrategySpec", "UnknownStrategy", "loader_class", "loader_names", "loaders", "make_loader",
           "resolve", "topologies"]

PRESETS: dict[str, tuple[str, str]] = {
    "naive": ("per_request", "eager"),
    "singleton": ("resident", "eager"),
    "mmap": ("resident", "mmap"),
    "quantized": ("resident", "int8-bf16"),
    "subprocess-worker": ("worker", "eager"),
}


@cache
def loaders() -> dict[str, dict[str, type[Loader]]]:
    """Loader classes by name, then by family: each family's own (`Family.loaders`), then the entry points'."""
    found: dict[str, dict[str, type[Loader]]] = {}
    for family in FAMILIES.values():
        for cls in family.loaders():
            found.setdefault(cls.name, {})[cls.family] = cls
    for entry in entry_points(group="ttsload.loaders"):
        cls = entry.load()
        found.setdefault(entry.name, {})[cls.family] = cls
    if os.environ.get("TTSLOAD_TEST_STRATEGIES") == "1":  # planted faults for the harness's own tests
        from ttsload.strategies.testing import with_planted_faults

        found = with_planted_faults(found)
    return found


def loader_class(name: str, family: str = "coqui") -> type[Loader]:
    """The class of loader `name` for a model of `family` (through the family's aliases)."""
    table = loaders()
    actual = name
    if family not in table.get(name, {}) and family in FAMILIES:  # the family's own loader for a preset's role
        actual = FAMILIES[family].aliases.get(name, name)
    if family in table.get(actual, {}):
        return table[actual][family]
    own = sorted(n for n, by_family in table.items() if family in by_family)
    raise UnknownStrategy(f"loader '{name}' does not load {family} models (loaders for {family}: "
                          f"{', '.join(own) or 'none'})")


def loader_names() -> list[str]:
    """Every loader name and family alias a strategy may use."""
    return list(dict.fromkeys([*loaders(), *(a for f in FAMILIES.values() for a in f.aliases)]))


@cache
def topologies() -> dict[str, type[Topology]]:
    from ttsload.strategies.topologies import TOPOLOGIES

    found = dict(TOPOLOGIES)
    for entry in entry_points(group="ttsload.topologies"):
        found[entry.name] = entry.load()
    return found


@dataclass(frozen=True)
class StrategySpec:
    """A resolved strategy: the name the user gave, the topology and loader it means, and its options
    (`strategies/options.py`: e.g. `singleton:retry=3`), as sorted (key, value) pairs."""

    name: str
    topology: str
    loader: str
    options: tuple[tuple[str, object], ...] = ()

    @property
    def option_map(self) -> dict[str, object]:
        return dict(self.options)

    @property
    def topology_class(self) -> type[Topology]:
        """What the harness asks about a topology: its capabilities, never its name."""
        return topologies()[self.topology]

    def to_json(self) -> dict[str, object]:
        """What a cell process receives: the strategy already resolved, so the cell never parses a name again."""
        return {"name": self.name, "topology": self.topology, "loader": self.loader,
                "options": [[key, value] for key, value in self.options]}

    @classmethod
    def from_json(cls, data: object) -> StrategySpec:
        """The inverse of to_json; ValueError naming the field on a malformed message (no name is resolved)."""
        if not isinstance(data, dict):
            raise ValueError(f"strategy: expected an object, got {type(data).__name__}")
        if unknown := sorted(set(data) - {"name", "topology", "loader", "options"}):
            raise ValueError(f"strategy: unknown field(s) {', '.join(unknown)}")
        for key in ("name", "topology", "loader"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"strategy.{key}: expected a non-empty string, got {data.get(key)!r}")
        options = data.get("options", [])
        if not isinstance(options, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) for pair in options):
            raise ValueError(f"strategy.options: expected [[key, value], ...], got {options!r}")
        return cls(data["name"], data["topology"], data["loader"], tuple((k, v) for k, v in options))

    def build(self, files: ModelFiles, hook: Hook, threads: int | None = None, workers: int = 1) -> Topology:
        options = self.option_map
        fallback = make_loader(str(options["fallback"]), files.family) if "fallback" in options else None
        loader = reliability.wrap(make_loader(self.loader, files.family), options, fallback)
        topology = self.topology_class(loader, files, hook, threads, workers)
        if idle.KEY in options:
            idle.configure(topology, float(str(options[idle.KEY])))
        return topology

    def check_family(self, family: str) -> None:
        """Raise UnknownStrategy (one line) when this strategy's loader (or its fallback) cannot load `family`."""
        loader_class(self.loader, family)
        if "fallback" in self.option_map:
            loader_class(str(self.option_map["fallback"]), family)


def make_loader(name: str, family: str = "coqui") -> Loader:
    return loader_class(name, family)()


def _alias(part: str) -> str:
    return part.strip().replace("-", "_") if part.strip().replace("-", "_") in topologies() else part.strip()


def resolve(name: str) -> StrategySpec:
    """Turn 'naive', 'worker+mmap', 'mmap+worker' or 'singleton:retry=3' into a StrategySpec, or raise
    UnknownStrategy."""
    name = name.strip()
    loaders()  # raises on a misconfigured planted fault before any cell starts
    base, option_text = strategy_options.split(name)
    options = tuple(sorted(strategy_options.parse(name, option_text).items()))
    fallback = dict(options).get("fallback")
    if fallback is not None and fallback not in loader_names():
        raise UnknownStrategy(f"strategy '{name}': option fallback={fallback!r}: not a loader "
                              f"({', '.join(loader_names())})")
    if base in PRESETS:
        return _accepted(StrategySpec(name, *PRESETS[base], options))
    parts = [_alias(p) for p in base.split("+")]
    topology = [p for p in parts if p in topologies()]
    loader = [p for p in parts if p in loader_names()]
    if len(parts) == 2 and len(topology) == 1 and len(loader) == 1:
        return _accepted(StrategySpec(name, topology[0], loader[0], options))
    raise UnknownStrategy(
        f"unknown strategy '{base}': use a preset ({', '.join(PRESETS)}) or TOPOLOGY+LOADER with "
        f"topologies {', '.join(topologies())} and loaders {', '.join(loader_names())}"
    )


def _accepted(spec: StrategySpec) -> StrategySpec:
    """`spec`, or UnknownStrategy when its topology cannot act on one of its options."""
    if reason := idle.refuse(spec.name, spec.topology_class, spec.option_map):
        raise UnknownStrategy(reason)
    return spec
