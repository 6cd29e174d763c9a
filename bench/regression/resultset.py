"""Result sets: per cell, the metric values of every successful repetition, plus where they came from.

One compact form serves three jobs: a committed baseline (`ttsload baseline save DIR NAME`), either
side of a gate, and one line of the history store. It is read from a results folder or from the
JSON it saves to, so the gate never cares which one it was given.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsload.bench import atomic
from ttsload.bench.analysis import stats
from ttsload.bench.analysis.metrics import GATEABLE
from ttsload.bench.cells import CellKey, Group
from ttsload.bench.errors import UsageError
from ttsload.bench.results import RESULTS, SCHEMA_VERSION, load_records

FORMAT = "ttsload-result-set"
FORMAT_VERSION = 1
OPTION_KEYS = ("requests", "cache", "corpus_seed", "threads", "interval")  # what makes runs comparable


@dataclass
class ResultSet:
    """Metric values per cell over its successful repetitions, with the run's environment and options."""

    source: str
    run_id: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    cells: dict[Group, dict[str, list[float]]] = field(default_factory=dict)
    repetitions: dict[Group, int] = field(default_factory=dict)  # successful
    failed: dict[Group, int] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)  # a noise study's thresholds (bench/regression/noise.py)
    plan_hash: str = ""  # the run's plan (bench/planid.py): a sharded plan's own shards never balance it

    @property
    def git_sha(self) -> str | None:
        return self.environment.get("git_sha")

    def metrics(self) -> set[str]:
        return {m for values in self.cells.values() for m, v in values.items() if v}

    @classmethod
    def from_folder(cls, folder: Path) -> ResultSet:
        """Read a results folder; refuses one without results, or written with another schema."""
        if not (folder / RESULTS).is_file():
            raise UsageError(f"no {RESULTS} in {folder}: not a ttsload results folder")
        records = load_records(folder)
        schemas = {r.get("schema") for r in records}
        if schemas != {SCHEMA_VERSION}:
            raise UsageError(f"{folder / RESULTS} has schema {sorted(map(str, schemas))}; "
                             f"this ttsload reads schema {SCHEMA_VERSION}")
        runs = [r for r in records if r.get("type") == "run"]
        rows = [r for r in records if r.get("type") == "cell"]
        if not runs or not rows:
            raise UsageError(f"{folder / RESULTS} has no {'run record' if not runs else 'finished cells'}")
        if len(classes := sorted({str(r["machine_class"]) for r in rows if r.get("machine_class")})) > 1:
            raise UsageError(f"{folder} holds {len(classes)} machine classes ({', '.join(classes)}): timings of "
                             f"different machines are not pooled; merge one class's runs to gate or save them")
        result = cls(str(folder), runs[-1].get("run_id", ""), runs[-1].get("environment", {}),
                     {k: runs[-1].get("options", {}).get(k) for k in OPTION_KEYS},
                     plan_hash=str(runs[-1].get("options", {}).get("plan_hash") or ""))
        values: dict[Group, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            key = CellKey.of_row(row).group
            if row.get("status") != "ok":
                result.failed[key] = result.failed.get(key, 0) + 1
                continue
            result.repetitions[key] = result.repetitions.get(key, 0) + 1
            values[key]  # noqa: B018 - the cell ran ok even when none of its values is a finite number
            for column, value in row.items():
                if column in GATEABLE and _is_number(value):
                    values[key][column].append(float(value))
        result.cells = {key: dict(metrics) for key, metrics in values.items()}
        for key in result.failed:
            result.cells.setdefault(key, {})
            result.repetitions.setdefault(key, 0)
        return result

    def to_json(self) -> dict[str, Any]:
        """Medians, 95% bootstrap intervals and the raw repetitions of every metric of every cell."""
        cells = []
        for key in sorted(self.cells):
            metrics = {}
            for metric, values in sorted(self.cells[key].items()):
                interval = stats.bootstrap_interval(values)
                metrics[metric] = {"median": _round(stats.statistic(values, "median")),
                                   "ci95": [_round(v) for v in interval] if interval else None,
                                   "values": [_round(v) for v in values]}
            cells.append({"strategy": key[0], "model": key[1], "scenario": key[2],
                          "repetitions": self.repetitions.get(key, 0), "failed": self.failed.get(key, 0),
                          "metrics": metrics})
        out = {"format": FORMAT, "version": FORMAT_VERSION, "source": self.source, "run_id": self.run_id,
               "environment": self.environment, "options": self.options, "cells": cells}
        out = {**out, "plan_hash": self.plan_hash} if self.plan_hash else out
        return {**out, "noise": self.noise} if self.noise else out

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> ResultSet:
        if data.get("format") != FORMAT:
            raise UsageError(f"{source} is not a ttsload baseline (no \"format\": \"{FORMAT}\")")
        if data.get("version") != FORMAT_VERSION:
            raise UsageError(f"{source} is baseline format version {data.get('version')}; "
                             f"this ttsload reads version {FORMAT_VERSION}")
        result = cls(source, data.get("run_id", ""), data.get("environment", {}), data.get("options", {}))
        result.noise = data.get("noise") or {}
        result.plan_hash = str(data.get("plan_hash") or "")
        try:
            for cell in data["cells"]:
                key = (cell["strategy"], cell["model"], cell["scenario"])
                result.cells[key] = {m: [float(v) for v in entry["values"]] for m, entry in cell["metrics"].items()}
                result.repetitions[key] = int(cell["repetitions"])
                result.failed[key] = int(cell.get("failed", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{source} is a malformed baseline: {type(exc).__name__}: {exc}") from None
        return result


def load(path: Path) -> ResultSet:
    """A results folder or a saved baseline file, whichever `path` is."""
    if path.is_dir():
        return ResultSet.from_folder(path)
    if not path.is_file():
        raise UsageError(f"no such results folder or baseline file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a ttsload baseline (a JSON object is expected)")
    return ResultSet.from_json(data, str(path))


def save(folder: Path, name: str, directory: Path = Path("baselines")) -> Path:
    """Store a results folder as `directory/NAME.json`: small, stable, fit to commit."""
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"baseline name '{name}' must be a plain file name")
    result = ResultSet.from_folder(folder)
    data = {**result.to_json(), "name": name, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.json"
    atomic.write_text(target, json.dumps(data, indent=1, sort_keys=False) + "\n")
    return target


def _is_number(value: object) -> bool:  # a field of a results line: anything
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _round(value: float) -> float:
    """Six significant digits: far below the noise, and it keeps committed baselines small."""
    return float(f"{value:.6g}")
