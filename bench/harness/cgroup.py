"""The CPU quota and memory limit the process's cgroup (a container, a Kubernetes pod) puts on it.

Kubernetes' Guaranteed QoS gives a container a CPU quota (cgroup v2 `cpu.max` "200000 100000" is 2 CPUs)
and a memory limit (`memory.max`), but pins it to cores only under the kubelet's static CPU manager policy.
Without that, `sched_getaffinity` and `/proc/meminfo` show the whole node: the fingerprint would call a 2-CPU,
8 GiB pod a 64-core, 256 GB machine, and torch would start 64 threads that the quota then throttles. So the
fingerprint and torch's default thread count take the smaller of what the machine has and what the cgroup
allows. cgroup v2 (the unified hierarchy) is read first, v1 (`cpu.cfs_quota_us`, `memory.limit_in_bytes`)
after; a limit set on an ancestor of the process's cgroup counts too (Kubernetes sets the pod's and the
container's). No cgroup file, or no limit: None, and the machine's own numbers stand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

ROOT, SELF = Path("/sys/fs/cgroup"), Path("/proc/self/cgroup")
UNLIMITED = 2**60  # cgroup v1 writes "no limit" as a page-rounded 2**63-1


@dataclass(frozen=True)
class Limits:
    cpus: float | None  # the CPU quota in CPUs (quota / period), None when unlimited
    memory_bytes: int | None  # None when unlimited

    def cores(self) -> int | None:
        """Whole cores the quota pays for (at least 1): the thread count that uses it without throttling."""
        return max(1, math.ceil(self.cpus - 1e-9)) if self.cpus else None

    def to_json(self) -> dict[str, float | int | None]:
        return {"cpus": self.cpus, "memory_bytes": self.memory_bytes}


def _number(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except (OSError, ValueError):
        return None
    return int(text[0]) if text and text[0].lstrip("-").isdigit() else None


def _folders(root: Path, relative: str) -> list[Path]:
    """The process's cgroup folder and its ancestors under ROOT. In a container with its own cgroup namespace
    /proc/self/cgroup says "/" and ROOT is the container's cgroup; without one, the path is the host's."""
    parts = [p for p in relative.strip("/").split("/") if p]
    found = [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [f for f in found if f.is_dir()]


def _v2(folders: list[Path]) -> Limits:
    cpus, memory = [], []
    for folder in folders:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max" and int(period) > 0:
                cpus.append(int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if (limit := _number(folder / "memory.max")) is not None:
            memory.append(limit)
    return Limits(min(cpus, default=None), min(memory, default=None))


def _v1(root: Path, paths: dict[str, str]) -> Limits:
    cpus, memory = [], []
    controller, relative = next(((c, p) for c, p in paths.items() if "cpu" in c.split(",")), ("cpu", "/"))
    mount = root / controller if (root / controller).is_dir() else root / "cpu"
    for folder in _folders(mount, relative):
        quota, period = _number(folder / "cpu.cfs_quota_us"), _number(folder / "cpu.cfs_period_us")
        if quota is not None and quota > 0 and period:
            cpus.append(quota / period)
    for folder in _folders(root / "memory", paths.get("memory", "/")):
        if (limit := _number(folder / "memory.limit_in_bytes")) is not None and limit < UNLIMITED:
            memory.append(limit)
    return Limits(min(cpus, default=None), min(memory, default=None))


def limits(root: Path = ROOT, self_file: Path = SELF) -> Limits:
    """The tightest CPU quota and memory limit on this process (None each where there is none)."""
    try:
        lines = self_file.read_text().splitlines()
    except OSError:
        return Limits(None, None)
    paths = {}
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        paths[controllers] = path
    if (root / "cgroup.controllers").is_file():  # the unified hierarchy mounted at ROOT
        return _v2(_folders(root, paths.get("", "/")))
    found = _v1(root, {c: p for c, p in paths.items() if c})
    if (root / "unified" / "cgroup.controllers").is_file() and found == Limits(None, None):  # hybrid
        return _v2(_folders(root / "unified", paths.get("", "/")))
    return found
