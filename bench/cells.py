"""The measured unit and everything observed of it, and the one place cell ids are made and parsed.

A cell is one repetition of a strategy serving a model in a scenario (variant); its id
`strategy|model|scenario|repeat` keys every record of a results file. Parts are escaped, so a
model given by a path holding `|` still splits back into the same four parts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote

from ttsload.bench.plan import Plan
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.events import Event

SINGLE = "single"  # the scenario of a plain `ttsload run`
_SEPARATOR = "|"


def _escape(part: str) -> str:
    """Only `%` and the separator are escaped, so ids stay readable and unquote() inverts it exactly."""
    return part.replace("%", "%25").replace(_SEPARATOR, "%7C")


@dataclass
class TreeReading:
    """One look at every process of a tree: per process, and summed."""

    t: float
    processes: list[dict[str, int]]
    total: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"t": self.t, "processes": self.processes, "total": self.total, "n": len(self.processes)}


class CellKey(NamedTuple):
    """The four parts of a cell id."""

    strategy: str
    model: str
    scenario: str
    repeat: int

    @property
    def id(self) -> str:
        return _SEPARATOR.join(_escape(str(part)) for part in self)

    @property
    def group(self) -> tuple[str, str, str]:
        """(strategy, model, scenario): the repetitions of one configuration share it."""
        return self.strategy, self.model, self.scenario

    @classmethod
    def parse(cls, cell_id: str) -> CellKey:
        parts = cell_id.split(_SEPARATOR)
        if len(parts) != 4 or not parts[3].isdigit():
            raise ValueError(f"not a cell id (strategy|model|scenario|repeat): {cell_id!r}")
        return cls(unquote(parts[0]), unquote(parts[1]), unquote(parts[2]), int(parts[3]))

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> CellKey:
        """The key of a summary row (a cell record)."""
        return cls(str(row["strategy"]), str(row["model"]), str(row["scenario"]), int(row["repeat"]))


Group = tuple[str, str, str]  # (strategy, model, scenario): what the repetitions of a configuration share


def group_label(group: Group) -> str:
    """How a configuration is named in gate and history output: strategy/model/scenario."""
    return "/".join(group)


def file_safe(name: str) -> str:
    """A file or folder name for a cell id or any label: readable, and distinct for distinct names."""
    slug = re.sub(r"[^A-Za-z0-9_.@+-]+", "_", name.replace(_SEPARATOR, "__")).strip("._")[:80]
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def plain_or_safe(name: str) -> str:
    """`name` itself when it is already a plain file name (stable, readable output names), else file_safe's."""
    return name if re.fullmatch(r"[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]{0,79}", name) else file_safe(name)


@dataclass(frozen=True)
class Cell:
    """One measured unit: a strategy serving a model, one repetition of it."""

    strategy: str
    model: ModelFiles
    repeat: int
    scenario: str = SINGLE  # a scenario's label: its name, plus its variant when it sweeps (workers@n4)
    plan: Plan = field(default_factory=Plan, compare=False, hash=False)  # what the cell process does

    @property
    def model_label(self) -> str:
        """The model column: one model's name, or 'a+b' for a cell that switches between models."""
        return self.plan.model_label or self.model.name

    @property
    def key(self) -> CellKey:
        return CellKey(self.strategy, self.model_label, self.scenario, self.repeat)

    @property
    def id(self) -> str:
        return self.key.id


@dataclass
class CellOutcome:
    """Everything observed of one cell, raw; `summary.summarize` turns it into a row."""

    cell: Cell
    t0: float
    events: list[dict[str, Any]] = field(default_factory=list)
    readings: list[TreeReading] = field(default_factory=list)
    steady: TreeReading | None = None
    marks: list[tuple[dict[str, Any], TreeReading]] = field(default_factory=list)  # (sync event, reading)
    after_request: list[tuple[int, TreeReading]] = field(default_factory=list)  # (request index, reading)
    root: int = 0  # the pid whose tree is measured: the cell, or the server it started (measure_root)
    sampler_cpu_s: float | None = None
    host_speed: dict[str, float] = field(default_factory=dict)  # bench/harness/hostspeed.py, taken before the cell
    status: str = "ok"
    reason: str = ""
    exit_code: int | None = None
    log: str = ""
    deadline_hit: bool = False
    evidence: list[str] = field(default_factory=list)

    def records(self, run_id: str) -> list[dict[str, Any]]:
        base = {"run_id": run_id, "cell": self.cell.id}
        out = [{"type": "event", **base, **e, "t_rel": e["t"] - self.t0} for e in self.events]
        out += [{"type": "sample", **base, **r.to_json(), "t_rel": r.t - self.t0} for r in self.readings]
        if self.steady is not None:
            out.append({"type": "sample", **base, **self.steady.to_json(), "t_rel": self.steady.t - self.t0,
                        "steady": True})
        out += [{"type": "sample", **base, **r.to_json(), "t_rel": r.t - self.t0, "mark": e.get("label", e["event"]),
                 **({"requests": e["requests"]} if "requests" in e else {})} for e, r in self.marks]
        out += [{"type": "sample", **base, **r.to_json(), "t_rel": r.t - self.t0, "after_request": index}
                for index, r in self.after_request]
        out += [{"type": "request", **base, **{k: v for k, v in e.items() if k != "event"}}
                for e in self.events if e["event"] == Event.REQUEST_END]
        if self.status != "ok":
            out.append({"type": "failure", **base, "status": self.status, "reason": self.reason,
                        "exit_code": self.exit_code, "log": self.log,
                        **({"evidence": self.evidence} if self.evidence else {})})
        return out
