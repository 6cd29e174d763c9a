"""A real memory limit on a cell's whole process tree: a memory cgroup where the machine lets us make one.

Order of preference: a cgroup v1 memory controller (`memory.limit_in_bytes`), a cgroup v2 group
(`memory.max`), else RLIMIT_AS on the cell process (inherited by its children, per process, and it
counts address space, not memory). Under a cgroup the kernel's OOM killer SIGKILLs a process of the tree,
so what survives it is a supervisor (bench/cell/pool.py); under RLIMIT_AS allocations fail inside the
process (MemoryError, torch's "can't allocate memory"), which the loader's fallback catches.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from ttsload.strategies.reliability import oom_kills

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")
MB = 2**20


class MemoryLimit:
    """`limit = MemoryLimit(mb, name)`; Popen(preexec_fn=limit.preexec); limit.attach(pid); ...; limit.close()."""

    def __init__(self, mb: int, name: str):
        self.mb, self.folder, self.mode = mb, None, "rlimit_as"
        for root, limit_file in ((V1, "memory.limit_in_bytes"), (V2, "memory.max")):
            if not (root / "cgroup.procs").exists() or (root is V2 and not (root / "cgroup.controllers").exists()):
                continue
            folder = root / "ttsload" / name
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if root is V1:
                    (folder / "memory.swappiness").write_text("0")  # no swap: the limit is a limit
                (folder / limit_file).write_text(str(mb * MB))
            except OSError:
                continue
            self.folder, self.mode = folder, "cgroup-v1" if root is V1 else "cgroup-v2"
            break

    @property
    def preexec(self) -> Any:
        """For Popen: RLIMIT_AS in the child when no cgroup could be made, else nothing."""
        if self.folder is not None:
            return None
        limit = self.mb * MB
        return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def attach(self, pid: int) -> None:
        """Put the cell in the group before it imports anything large (its children inherit the group)."""
        if self.folder is not None:
            (self.folder / "cgroup.procs").write_text(str(pid))

    def facts(self) -> dict[str, Any]:
        """What the results keep of the limit: how it was set and how often the OOM killer acted under it."""
        peak = None
        for name in ("memory.max_usage_in_bytes", "memory.peak"):  # v1, v2 (kernel >= 5.19)
            try:
                peak = int((self.folder / name).read_text()) / MB if self.folder is not None else None
                break
            except (OSError, ValueError):
                continue
        return {"memory_limit_mb": self.mb, "memory_limit_mode": self.mode, "cgroup_peak_mb": peak,
                "oom_kills": oom_kills(self.folder) if self.folder is not None else None}

    def close(self) -> None:
        """Remove the group (its processes are gone by now: the runner killed the cell's process group)."""
        if self.folder is None:
            return
        for _ in range(50):
            try:
                self.folder.rmdir()
                self.folder.parent.rmdir()  # the shared parent too, once the last cell's group is gone
                return
            except OSError:  # the kernel may take a moment to drop the killed tasks; the parent may be in use
                if not self.folder.exists():
                    return
                time.sleep(0.1)
