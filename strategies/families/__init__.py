"""Model families: what a model of each is made of, found through the `ttsload.families` entry points.

A family lives in one folder (`strategies/families/<family>/`, or a third party's package) whose
`FAMILY` says how to recognise a user's folder of it (`detect`, `roles`), which loaders load it,
which fixtures it can build and how (`build`). Built-in families register through the same entry
points as a plugin's, so the registry knows no family by name. A folder that matches none gets an
error naming every family and what each looks for. Where a family has no loader of a preset's name,
`aliases` says which of its own plays that role (the ONNX family has no torch `mmap`: its
memory-lean session stands in).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.strategies.families import folders
from ttsload.strategies.families.folders import CHECKPOINT_SUFFIXES, FolderError

if TYPE_CHECKING:
    from ttsload.strategies.base import Loader

__all__ = ["CHECKPOINT_SUFFIXES", "FAMILIES", "GROUP", "BuildRequest", "Family", "Fixture", "FolderError",
           "detect", "families", "folders", "no_family_message", "plugin_errors"]

GROUP = "ttsload.families"
# An install made before families were entry points (an editable one keeps its old metadata) has none.
STALE = ("ttsload's own families are not registered: the installed ttsload's metadata has no ttsload.families "
         "entry points (reinstall it: pip install -e .)")


@dataclass(frozen=True)
class Fixture:
    """A model a family can build: its architecture, config overrides and the seed of its weights.

    `family`: left out, it is the family whose `fixtures` declare it (filled in by `Family`): a default
    naming one family would send another family's fixture to the wrong builder.
    `key_facts`: what else decides the built bytes besides architecture and args (default: the family),
    part of the cache key, so a fixture is rebuilt when they change.
    """

    name: str
    architecture: str
    summary: str
    model_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    family: str = ""  # "" until its Family fills in its own name
    key_facts: dict[str, Any] | None = None

    def key(self) -> str:
        """The name of its cache folder: name, a digest of what decides the built bytes, and the seed."""
        facts = self.key_facts if self.key_facts is not None else {"family": self.family}
        spec = {"arch": self.architecture, "args": self.model_args, **facts}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.name}-{digest}-s{self.seed}"


@dataclass(frozen=True)
class BuildRequest:
    """What a family's builder is handed: the fixture, sample sentences (e.g. to train a tokenizer on; the
    bench passes its request corpus, which this layer may not import) and, for a family whose fixtures
    are exported from another family's (`Family.exports_from`), that fixture's name."""

    fixture: Fixture
    texts: tuple[str, ...] = ()
    source: str | None = None


@dataclass(frozen=True)
class Family:
    """One model family. `detect(folder)` says whether a folder holds one; `roles(folder, chosen)` names the
    file playing each role (config, checkpoint, extras) or raises FolderError; `loaders()` returns its
    Loader classes (imported only when called); `build(request, out)` writes a fixture into `out` and
    returns the manifest's facts (params, roles). `specificity`: families are tried from the highest, so a
    catch-all (Coqui: any config.json beside a checkpoint) comes last."""

    name: str
    summary: str
    looks_for: str  # for error messages: the files that make a model of this family
    detect: Callable[[Path], bool]
    roles: Callable[[Path, Path | None], dict[str, Path]]
    loaders: Callable[[], list[type[Loader]]]
    build: Callable[[BuildRequest, Path], dict[str, Any]] | None = None
    fixtures: tuple[Fixture, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)  # preset loader name -> this family's loader
    specificity: int = 50
    exports_from: str | None = None  # the family whose fixture (same architecture, args, seed) this one exports

    def __post_init__(self) -> None:
        """A fixture that names no family is this family's."""
        own = tuple(f if f.family else replace(f, family=self.name) for f in self.fixtures)
        object.__setattr__(self, "fixtures", own)  # frozen: set once, here


class _Registry:
    """Families by name, read once from the entry points. ttsload's own come first, then other distributions
    by name: a family that fails to import, is not a `Family`, or claims a family or fixture name already
    taken is left out with a one-line reason (`plugin_errors`), so one broken plugin never stops a run."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.errors: list[str] = []
        self.fixtures: dict[str, str] = {}  # fixture name -> family
        found = sorted(entry_points(group=GROUP), key=_order)
        if not any(_dist(entry) == "ttsload" for entry in found):
            self.errors.append(STALE)
        for entry in found:
            where = f"{entry.value} (distribution {_dist(entry)})"
            try:
                family = entry.load()
            except Exception as exc:  # noqa: BLE001 - whatever a plugin raises on import is reported, not fatal
                self.errors.append(f"family plugin '{entry.name}' = {where} failed to load: "
                                   f"{type(exc).__name__}: {exc}")
                continue
            if reason := self._refusal(entry.name, family):
                self.errors.append(f"family plugin '{entry.name}' = {where} refused: {reason}")
                continue
            self.families[family.name] = family
            self.fixtures |= {fixture.name: family.name for fixture in family.fixtures}

    def _refusal(self, entry_name: str, family: object) -> str | None:
        if not isinstance(family, Family):
            return f"it is a {type(family).__name__}, not a ttsload.strategies.families.Family"
        if family.name != entry_name:
            return f"the entry point's name must be the family's name ('{family.name}')"
        if family.name in self.families:
            return f"family name '{family.name}' is already taken"
        if taken := [f"{f.name} (of {self.fixtures[f.name]})" for f in family.fixtures if f.name in self.fixtures]:
            return f"fixture names already taken: {', '.join(taken)}"
        if wrong := [f"fixture '{f.name}' has family='{f.family}'; set family='{family.name}'"
                     for f in family.fixtures if f.family != family.name]:
            return "; ".join(wrong)
        return None


def _dist(entry: EntryPoint) -> str:
    return entry.dist.name if entry.dist is not None else "unknown"


def _order(entry: EntryPoint) -> tuple[bool, str, str]:
    """ttsload's built-in families first, so a plugin can never take a built-in's name."""
    return (_dist(entry) != "ttsload", _dist(entry), entry.name)


@cache
def _registry() -> _Registry:
    return _Registry()


def families() -> dict[str, Family]:
    """Every registered family by name."""
    return _registry().families


def plugin_errors() -> list[str]:
    """One line per family entry point that was left out, and why."""
    return list(_registry().errors)


class _Families(Mapping[str, Family]):
    """`FAMILIES`: a read-only view of the registry, read from the entry points on first use (not at import:
    a family's own module imports this one)."""

    def __getitem__(self, name: str) -> Family:
        return families()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(families())

    def __len__(self) -> int:
        return len(families())


FAMILIES: Mapping[str, Family] = _Families()


def detect(folder: Path) -> Family | None:
    """The family whose files the folder holds: the most specific that recognises it."""
    for family in sorted(families().values(), key=lambda f: (-f.specificity, f.name)):
        if family.detect(folder):
            return family
    return None


def no_family_message(folder: Path) -> str:
    if STALE in plugin_errors():
        return f"no model family recognises the files in {folder}: {STALE}"
    tried = "; ".join(f"{f.name}: {f.looks_for}" for f in families().values())
    return f"no model family recognises the files in {folder} (tried {tried})"
