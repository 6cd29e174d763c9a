"""The plan a scenario hands to one cell: what the cell process does, typed and checked once.

The scenario loader builds it (from a validated script), the runner sends it to the cell process
as JSON, and the cell kinds (pool, switch, http) read its fields; nobody reads a loose dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ttsload.bench.http_limits import HttpLimits

KINDS = ("single", "pool", "switch", "http", "idle")
# The http kind's server stacks (bench/serving/stacks.py): gunicorn + Flask, and the asgi ones.
STACKS = ("flask", "uvicorn", "gunicorn-uvicorn", "loop-threads", "loop-workers")
PHASE_ACTIONS = ("requests", "trim", "kill_worker", "idle")  # idle: wait for idle_unload (bench/cell/idle_kind.py)
ORDERS = ("cycle", "random")
PATTERNS = ("round-robin", "random")
FAULTS = ("sigkill", "sigstop", "oom", "replace_checkpoint", "delete_checkpoint", "hide_checkpoint")

TRIMMED_STEADY = "steady_trimmed"  # label of the sync reading taken after malloc_trim(0) in the whole tree


class PlanError(ValueError):
    """A plan that cannot be run: names the field and what is wrong with it."""


@dataclass(frozen=True)
class Phase:
    """One step of a scenario: a load phase (`requests`), a `trim`, or a `kill_worker` drill."""

    do: str
    count: int = 0  # requests
    concurrency: int = 1  # closed-loop clients (a scenario's "workers" is resolved before this)
    rate: float | None = None  # Poisson arrivals per second (open loop) instead of a closed loop
    seed: int = 0  # of the Poisson arrivals
    label: str = ""
    add_workers: int = 0  # a scale-out under load ...
    add_after: int = 0  # ... once this many requests of the phase have been answered
    trim_every: int = 0  # pause for a trim after every N requests (0: never)
    worker: int | None = None  # kill_worker: which

    def __post_init__(self) -> None:
        if self.do not in PHASE_ACTIONS:
            raise PlanError(f"phase.do: expected one of {', '.join(PHASE_ACTIONS)}, got {self.do!r}")
        if self.do == "requests" and self.count < 1:
            raise PlanError(f"phase.count: a requests phase sends at least 1 request, got {self.count}")
        if self.concurrency < 1:
            raise PlanError(f"phase.concurrency: at least 1, got {self.concurrency}")
        if self.do == "kill_worker" and (self.worker is None or self.worker < 0):
            raise PlanError(f"phase.worker: kill_worker names a worker index >= 0, got {self.worker!r}")

    def to_shape_json(self) -> dict[str, Any]:
        """The fields a load shape is made of (drive.LoadShape.from_json)."""
        return {"count": self.count, "concurrency": self.concurrency, "rate": self.rate, "seed": self.seed}


@dataclass(frozen=True)
class LeakSettings:
    """How a soak's leak is called: after `warmup` requests, the interval clear of the threshold."""

    warmup: int = 50
    threshold_mb_per_1k: float = 5.0
    confidence: float = 0.95


@dataclass(frozen=True)
class Plan:
    """What one cell process runs. `single` with no other field is the plain serve of `--scenario single`."""

    kind: str = "single"
    phases: tuple[Phase, ...] = ()
    workers: int = 1
    threads: int | None = None  # torch threads per serving process; None: torch's own
    sampler: str = "on"  # "off": no timeline sampling (readings only at sync points)
    timeout_s: float | None = None
    order: str = "cycle"  # request texts in order, or drawn at random (seeded)
    order_seed: int = 0
    lru: int | None = None  # switch: models kept loaded
    models: tuple[dict[str, Any], ...] = ()  # switch: every model's files (ModelFiles JSON)
    model_label: str | None = None  # switch: 'a+b'
    pattern: str = "round-robin"  # switch: which model each request asks for
    pattern_seed: int = 0
    preload: bool | None = None  # http: gunicorn --preload (None: not an http plan)
    stack: str | None = None  # http: the server stack (None: flask, and left out of the plan's JSON and hash)
    http_limits: HttpLimits | None = None  # http: the app's limits (None: HttpLimits' defaults)
    leak: LeakSettings = field(default_factory=LeakSettings)
    fault: str | None = None  # a fault drill (bench/cell/faults.py), fired once `fault_after` requests are answered
    fault_after: int = 1
    hide_s: float = 2.0  # hide_checkpoint: how long the checkpoint is absent
    memory_limit_mb: int | None = None  # a memory limit on the cell's process tree (bench/harness/memlimit.py)

    def __post_init__(self) -> None:
        checks = ((self.kind in KINDS, "kind", f"one of {', '.join(KINDS)}", self.kind),
                  (self.workers >= 1, "workers", "at least 1", self.workers),
                  (self.threads is None or self.threads >= 1, "threads", "at least 1", self.threads),
                  (self.sampler in ("on", "off"), "sampler", "on or off", self.sampler),
                  (self.order in ORDERS, "order", " or ".join(ORDERS), self.order),
                  (self.pattern in PATTERNS, "pattern", " or ".join(PATTERNS), self.pattern),
                  (self.kind != "switch" or (self.lru or 0) >= 1, "lru", "at least 1 for a switch plan", self.lru),
                  (self.kind != "switch" or len(self.models) >= 2, "models", "at least 2 for a switch plan",
                   len(self.models)),
                  (self.stack is None or self.stack in STACKS, "stack", f"one of {', '.join(STACKS)}", self.stack),
                  (self.fault is None or self.fault in FAULTS, "fault", f"one of {', '.join(FAULTS)}", self.fault),
                  (self.memory_limit_mb is None or self.memory_limit_mb >= 16, "memory_limit_mb", "at least 16",
                   self.memory_limit_mb))
        for ok, name, expected, got in checks:
            if not ok:
                raise PlanError(f"plan.{name}: expected {expected}, got {got!r}")

    @property
    def request_count(self) -> int:
        return sum(p.count for p in self.phases if p.do == "requests")

    @property
    def added_workers(self) -> int:
        return sum(p.add_workers for p in self.phases)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["stack"] is None:  # plans made before stacks existed keep their JSON, so their ids
            del data["stack"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Plan:
        """The inverse of to_json; an unknown field is an error, not silently dropped."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise PlanError(f"plan: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        data["phases"] = tuple(Phase(**p) for p in data.get("phases", ()))
        data["models"] = tuple(data.get("models", ()))
        data["leak"] = LeakSettings(**data.get("leak", {}))
        data["http_limits"] = HttpLimits.from_json(data["http_limits"]) if data.get("http_limits") else None
        return cls(**data)
