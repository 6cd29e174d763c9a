"""Scenario scripts: find them, read them (tomllib, validated), and expand them into cells.

A scenario names a deployment shape; its sweeps (worker counts, LRU sizes, sampler on/off, preload
or not) become variants, and each variant × strategy × model × repetition is one cell, run in its
own fresh process by the same runner as every other cell. Built-in scripts live in `scenarios/`
(installed as package data of `ttsload.scenarios`); a path to any .toml file works too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import tomllib

from ttsload.bench.cells import Cell
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.plan import LeakSettings, Phase, Plan
from ttsload.bench.scenario import corpus
from ttsload.bench.scenario.schema import ScenarioError, validate
from ttsload.strategies.base import ModelFiles


def builtin_folder() -> Path:
    """Where the built-in scripts are: package data of `ttsload.scenarios` (the repo's scenarios/)."""
    from importlib import resources

    return Path(str(resources.files("ttsload.scenarios")))


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.data.get("kind", "pool")

    @property
    def summary(self) -> str:
        return self.data["summary"]

    def default(self, key: str, fallback: Any) -> Any:
        return self.data.get(key, fallback)

    def texts(self, requests: int | None = None, seed: int | None = None) -> list[str]:
        """The distinct texts requests draw from (the single kind sends exactly these, once each)."""
        texts = self.data.get("texts", {})
        count = requests if requests and self.kind == "single" else texts.get("distinct", 10)
        seed = seed if seed is not None else texts.get("seed", 0)
        return corpus.texts(count, seed, texts.get("min_chars", corpus.MIN_CHARS),
                            texts.get("max_chars", corpus.MAX_CHARS))

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, plan fields) per point of the scenario's sweeps; the label names the point."""
        workers = self.data.get("workers", {}).get("counts", [1]) if self.kind in ("pool", "http") else [None]
        lru = self.data.get("switch", {}).get("lru", [1]) if self.kind == "switch" else [None]
        modes = self.data.get("sampler", {}).get("modes", [None])
        preload = self.data.get("http", {}).get("preload", [False]) if self.kind == "http" else [None]
        stacks = self.data.get("http", {}).get("stack", [None]) if self.kind == "http" else [None]
        drills = self.data.get("faults", {}).get("drills", [None]) if self.kind == "pool" else [None]
        out = []
        for n, k, mode, stack, pre, drill in product(workers, lru, modes, stacks, preload, drills):
            parts = [f"n{n}" if n is not None else "", f"k{k}" if k is not None else "",
                     f"sampler-{mode}" if mode else "", stack or "",
                     ("preload" if pre else "no-preload") if pre is not None else "", drill or ""]
            fields = {"workers": n, "lru": k, "sampler": mode, "stack": stack, "preload": pre, "fault": drill}
            label = "-".join(p for p in parts if p)
            given = {key: value for key, value in fields.items() if value is not None}
            out.append((f"{self.name}@{label}" if label else self.name, given))
        return out

    def plan(self, fields: dict[str, Any], threads: int | None, requests: int | None,
             timeout_s: float | None, models: list[ModelFiles]) -> Plan:
        """What one cell of this scenario runs; a single-kind plan is the plain serve."""
        sampler = fields.get("sampler") or "on"
        if self.kind == "single":
            return Plan(sampler=sampler, timeout_s=timeout_s)
        workers = int(fields.get("workers") or 1)
        phases = [self._phase(p, requests, workers) for p in self.data.get("phase", [{"do": "requests", "count": 10}])]
        peak = workers + sum(p.add_workers for p in phases)
        texts, switch = self.data.get("texts", {}), self.data.get("switch", {})
        is_switch = self.kind == "switch"
        return Plan(
            kind=self.kind, phases=tuple(phases), workers=workers, threads=threads or self._threads(peak),
            sampler=sampler, timeout_s=timeout_s or self.data.get("timeout_s"),
            order=texts.get("order", "cycle"), order_seed=texts.get("seed", 0),
            lru=fields.get("lru"), preload=fields.get("preload"), stack=fields.get("stack"),
            http_limits=HttpLimits.from_json(self.data.get("http")) if self.kind == "http" else None,
            models=tuple(m.to_json() for m in models) if is_switch else (),
            model_label="+".join(m.name for m in models) if is_switch else None,
            pattern=switch.get("pattern", "round-robin"), pattern_seed=switch.get("seed", 0),
            leak=LeakSettings(**self.data.get("leak", {})), **self._fault(fields.get("fault")),
        )

    def _fault(self, drill: str | None) -> dict[str, Any]:
        """The plan fields of a fault drill (bench/cell/faults.py): which, when, and the memory limit of `oom`."""
        if drill is None:
            return {}
        table = self.data.get("faults", {})
        return {"fault": drill, "fault_after": table.get("after", 1), "hide_s": float(table.get("hide_s", 2.0)),
                "memory_limit_mb": table.get("memory_limit_mb") if drill == "oom" else None}

    @staticmethod
    def _phase(data: dict[str, Any], requests: int | None, workers: int) -> Phase:
        """A script's [[phase]] with --requests and `concurrency = "workers"` resolved."""
        phase = dict(data)
        if phase["do"] == "requests":
            phase["count"] = requests or phase["count"]
            phase["add_after"] = min(phase.get("add_after", 0), phase["count"] - 1)
            if phase.get("concurrency") == "workers":
                phase["concurrency"] = workers
        return Phase(**phase)

    def _threads(self, peak_workers: int) -> int:
        """torch threads per worker: the scenario's number, or max(1, cores // workers) so N workers never
        oversubscribe the cores (a 4-worker pool on 2 cores gets 1 thread each)."""
        setting = self.data.get("workers", {}).get("threads", "auto")
        return setting if isinstance(setting, int) else max(1, (os.cpu_count() or 1) // peak_workers)

    def cells(self, strategies: list[str], models: list[ModelFiles], repeat: int, threads: int | None = None,
              requests: int | None = None, timeout_s: float | None = None) -> list[Cell]:
        """Repetitions outermost (r0 of every cell, then r1, ...), so drift over a run hits all cells alike."""
        groups = [models] if self.kind == "switch" else [[m] for m in models]
        if self.kind == "switch" and len(models) < 2:
            raise ScenarioError(f"{self.path}: models: the switch scenario needs at least 2 models, got "
                                f"{', '.join(m.name for m in models)}")
        return [Cell(strategy, group[0], r, label, self.plan(fields, threads, requests, timeout_s, group))
                for r in range(repeat) for group in groups for label, fields in self.variants()
                for strategy in strategies if not self.inapplicable(strategy, fields)]

    def inapplicable(self, strategy: str, fields: dict[str, Any]) -> str | None:
        """Why a variant cannot run a strategy at all (then it is skipped, and the run says so), or None."""
        from ttsload.strategies.registry import resolve

        if self.kind not in ("single", "idle") and "idle_unload" in resolve(strategy).option_map:
            return f"idle_unload acts where the cell builds the strategy (single, idle), not in a {self.kind} kind"
        if fields.get("stack"):
            from ttsload.bench.serving.stacks import unfit

            if reason := unfit(fields["stack"], resolve(strategy), bool(fields.get("preload"))):
                return reason
        if fields.get("preload") and not resolve(strategy).topology_class.serves_from_resident_model:
            return "gunicorn --preload loads one resident model in the master: this topology does not serve from one"
        if fields.get("fault"):
            from ttsload.strategies.reliability import claims

            return claims(resolve(strategy).option_map, fields["fault"])
        return None

    def skipped(self, strategies: list[str]) -> list[str]:
        """One line per (variant, strategy) pair left out of the plan, with the reason."""
        return [f"{label} x {strategy}: {reason}" for label, fields in self.variants() for strategy in strategies
                if (reason := self.inapplicable(strategy, fields))]


def available() -> dict[str, Path]:
    """Built-in scenarios by name."""
    return {path.stem: path for path in sorted(builtin_folder().glob("*.toml"))}


def load(name_or_path: str) -> Scenario:
    """A built-in name or a path to a .toml file; errors name the file and the key."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        builtin = available()
        if name_or_path not in builtin:
            raise ScenarioError(f"unknown scenario '{name_or_path}': use a built-in ({', '.join(builtin)}) "
                                "or a path to a .toml file")
        path = builtin[name_or_path]
    if path.exists() and not path.is_file():  # a folder, or a FIFO/device that would block or never end
        raise ScenarioError(f"{path}: is {'a folder' if path.is_dir() else 'not a regular file'}, not a scenario "
                            "file (.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return Scenario(path.stem, path, validate(data, path))
