"""Shards of a run's plan: which cells one machine of a fan-out runs, decided the same way on every machine.

Shards are numbered from 0, `--shard I/N` with 0 <= I < N, because both engines that fan a run out hand
out 0-based indices: Kubernetes' `$JOB_COMPLETION_INDEX` and GitHub Actions' `strategy.job-index`.

The cells are cut into units: by default one unit per configuration (strategy, model, scenario), holding
all its repetitions, so the repetitions of one configuration are measured on one machine and never split
across machine classes by accident; `--shard-by cell` makes each repetition its own unit. Units are
balanced by expected duration (longest first onto the least loaded shard) from the history store where it
has the configuration, and by count where it has none. The assignment depends only on the plan and the
durations read, so every shard must read the same history (or none): the run record keeps a digest of
the durations used (`shard_basis`), and `ttsload merge` refuses shards balanced from different ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from ttsload.bench.cells import CellKey, Group
from ttsload.bench.errors import UsageError

GROUPINGS = ("config", "cell")  # a unit is a configuration with all its repetitions, or one repetition
INDEX_VARIABLE = "JOB_COMPLETION_INDEX"  # Kubernetes Indexed Jobs; `--shard env/N` reads it
MAX_SHARDS = 10_000


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str, environ: dict[str, str] | None = None) -> Shard:
    """`I/N` (0-based I), or `env/N` for the index in $JOB_COMPLETION_INDEX; one-line errors otherwise."""
    environ = os.environ if environ is None else environ
    index, _, count = text.partition("/")
    if index == "env":
        if INDEX_VARIABLE not in environ:
            raise UsageError(f"--shard {text}: ${INDEX_VARIABLE} is not set (Kubernetes sets it in Indexed Jobs)")
        index = environ[INDEX_VARIABLE]
    if not all(part.strip().isascii() and part.strip().isdigit() for part in (index, count)):  # '²'.isdigit()
        raise UsageError(f"--shard {text}: expected I/N with whole numbers (0-based I, e.g. 0/3 1/3 2/3), or env/N")
    if int(count) > MAX_SHARDS:
        raise UsageError(f"--shard {text}: at most {MAX_SHARDS} shards")
    shard = Shard(int(index), int(count))
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise UsageError(f"--shard {text}: the index is 0-based, 0..{max(shard.count - 1, 0)} for {shard.count} "
                         f"shards (as Kubernetes' ${INDEX_VARIABLE} and GitHub's strategy.job-index are)")
    return shard


def unit_of(key: CellKey, grouping: str) -> tuple[Any, ...]:
    """What is kept together in one shard: the configuration (all repetitions) or the single repetition."""
    return key.group if grouping == "config" else tuple(key)


def expected_durations(keys: list[CellKey], history: Path | None, requests: int | None,
                       plan: str | None = None) -> dict[str, float]:
    """Seconds one repetition of each cell is expected to take, by cell id, for cells the history knows.

    From the newest history line holding the configuration: the median of `wall_s` (the cell process's
    lifetime) when it was recorded, else cold start + audio x RTF (load, then the synthesis time). When the
    plan sends another number of requests than that line did, the synthesis part is scaled to it. Lines of
    the plan itself (`plan`, its hash) are skipped: shards run one after another on one machine append to
    the history, and the next shard must still cut the plan exactly as the first did.
    """
    found = _history_estimates(history, requests, plan)
    return {key.id: found[key.group] for key in keys if key.group in found}


def _history_estimates(history: Path | None, requests: int | None, plan: str | None) -> dict[Group, float]:
    if history is None or not history.is_file():
        return {}
    estimates: dict[Group, tuple[str, float]] = {}
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # the history's own reader names bad lines; balancing only needs the good ones
        if plan and entry.get("plan_hash") == plan:
            continue
        ran = (entry.get("options") or {}).get("requests")
        scale = requests / ran if requests and ran else 1.0
        for cell in entry.get("cells", []):
            seconds = _estimate(cell.get("metrics", {}), scale)
            group = (cell["strategy"], cell["model"], cell["scenario"])
            if seconds is not None and entry.get("date", "") >= estimates.get(group, ("", 0.0))[0]:
                estimates[group] = (entry.get("date", ""), seconds)
    return {group: seconds for group, (_, seconds) in estimates.items()}


def _estimate(metrics: dict[str, Any], scale: float) -> float | None:
    def med(name: str) -> float | None:
        return (metrics.get(name) or {}).get("median")

    if med("wall_s"):
        cold = med("cold_start_s") or 0.0
        return cold + (med("wall_s") - cold) * scale
    if med("cold_start_s") is None:
        return None
    return med("cold_start_s") + (med("audio_s") or 0.0) * (med("rtf") or 0.0) * scale


def assign(keys: list[CellKey], count: int, durations: dict[str, float], grouping: str = "config") -> dict[str, int]:
    """Shard (0-based) per cell id: units longest first onto the least loaded shard; ties broken by name.

    Cells the history does not know weigh the median of those it does (1 each when it knows none), so
    a plan with no history is balanced by count.
    """
    default = median(durations.values()) if durations else 1.0
    units: dict[tuple[Any, ...], list[CellKey]] = {}
    for key in keys:
        units.setdefault(unit_of(key, grouping), []).append(key)
    # fsum: exactly rounded, so a unit's weight (and the order of ties) does not depend on the plan's order
    weight = {unit: math.fsum(durations.get(k.id, default) for k in members) for unit, members in units.items()}
    load = [0.0] * count
    shard_of: dict[str, int] = {}
    for unit in sorted(units, key=lambda u: (-weight[u], json.dumps(u))):
        target = min(range(count), key=lambda i: (load[i], i))
        load[target] += weight[unit]
        shard_of.update({k.id: target for k in units[unit]})
    return shard_of


def basis(durations: dict[str, float]) -> str:
    """A digest of the durations a plan was balanced with: shards agree on it or may not partition the plan."""
    text = json.dumps({k: round(v, 6) for k, v in sorted(durations.items())}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
