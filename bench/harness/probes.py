"""Memory of a whole process tree, read from outside the measured processes.

psutil finds the tree; /proc/PID/smaps_rollup gives in one read what psutil's memory_full_info
reads too (RSS, PSS, USS) plus what it drops (Pss_Anon, Pss_File, Shared_*), so a mapped
checkpoint shows up as file-backed memory rather than anonymous. Sum PSS and USS over a tree;
RSS is reported summed only to show how much a naive sum over-counts shared pages.
"""

from __future__ import annotations

import os
import threading
import time

import psutil

from ttsload.bench.cells import TreeReading

_FIELDS = {
    "Rss": "rss",
    "Pss": "pss",
    "Pss_Anon": "pss_anon",
    "Pss_File": "pss_file",
    "Shared_Clean": "shared_clean",
    "Shared_Dirty": "shared_dirty",
    "Private_Clean": "private_clean",
    "Private_Dirty": "private_dirty",
    "Swap": "swap",
}
TOTAL_KEYS = ("rss", "pss", "uss", "pss_anon", "pss_file", "swap", "rss_hwm")


def read_process(pid: int) -> dict[str, int] | None:
    """Bytes by kind for one process, or None if it is gone (or not readable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    reading = {key: 0 for key in _FIELDS.values()}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        if name in _FIELDS:
            reading[_FIELDS[name]] = int(rest.split()[0]) * 1024
    reading["uss"] = reading["private_clean"] + reading["private_dirty"]
    reading["rss_hwm"] = _rss_high_water_mark(pid)
    reading["pid"] = pid
    return reading


def _rss_high_water_mark(pid: int) -> int:
    """The kernel's exact peak RSS of a process (VmHWM): a peak no sampling cadence can miss."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_pids(root: int) -> list[int]:
    try:
        parent = psutil.Process(root)
        return [root] + [child.pid for child in parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def read_tree(root: int) -> TreeReading:
    processes = [r for pid in tree_pids(root) if (r := read_process(pid)) is not None]
    total = {key: sum(p[key] for p in processes) for key in TOTAL_KEYS}
    return TreeReading(time.monotonic(), processes, total)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def read_rss_fast(pids: list[int]) -> TreeReading:
    """The cheap reading: summed resident pages from /proc/PID/statm (no page-table walk), RSS only."""
    processes = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                processes.append({"pid": pid, "rss": int(handle.read().split()[1]) * _PAGE})
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue
    return TreeReading(time.monotonic(), processes, {"rss": sum(p["rss"] for p in processes)})


class TreeSampler(threading.Thread):
    """The memory timeline of a tree: cheap RSS readings at `interval_s`, a full one every `full_every_s`.

    A full reading (smaps_rollup: PSS, USS, anon/file) walks every page table of every process: ~15 ms
    a reading of one synthesizing vits process, and more while it is busy. At a fixed 50 ms cadence
    that took 30 % of a core and cost +46 % p50 latency on a 2-core machine; even capped at 5 % of a
    core it still cost +7 %. /proc/PID/statm reads a counter instead (microseconds), so the timeline
    keeps its cadence for RSS, while PSS/USS come from a full reading every `full_every_s` and from
    the exact readings the runner takes at every sync point (after each request, steady, trims).
    The process list is refreshed at each full reading (walking /proc costs about a millisecond).
    Either way the sampler spends at most `max_duty` of one core: after work that cost c seconds of
    CPU, the next reading waits at least c / max_duty. The cadence a cell really got is in its row.
    """

    def __init__(self, root: int, interval_s: float = 0.05, max_duty: float = 0.02, full_every_s: float = 2.0):
        super().__init__(name="ttsload-sampler", daemon=True)
        self.root = root
        self.interval_s = interval_s
        self.max_duty = max_duty
        self.full_every_s = full_every_s
        self.readings: list[TreeReading] = []
        self.cpu_s = 0.0  # CPU time the sampler itself used: its direct cost on a 2-core machine
        self._stop_event = threading.Event()
        self._wake = threading.Event()  # set by stop() and full_now()
        self._full_now = False

    def full_now(self) -> None:
        """Take a full reading as soon as the duty cap allows (the runner asks at load events, where the
        peak during load sits: the cheap readings cannot see PSS)."""
        self._full_now = True
        self._wake.set()

    def run(self) -> None:
        next_at, full_at, pids, root = time.monotonic(), 0.0, [], None
        while not self._stop_event.is_set():
            self._wake.clear()
            cpu = time.thread_time()
            if self._full_now or time.monotonic() >= full_at or root != self.root:  # the root may move
                self._full_now, root = False, self.root
                reading = read_tree(root)
                pids = [p["pid"] for p in reading.processes]
                full_at = time.monotonic() + self.full_every_s
            else:
                reading = read_rss_fast(pids)
            if reading.processes:
                self.readings.append(reading)
            cost = time.thread_time() - cpu
            self.cpu_s += cost
            earliest = time.monotonic() + cost / self.max_duty - cost  # the duty cap
            next_at = max(next_at + self.interval_s, earliest)
            if self._wake.wait(max(0.0, next_at - time.monotonic())):  # a full reading asked for early
                self._stop_event.wait(max(0.0, earliest - time.monotonic()))
                next_at = max(time.monotonic(), earliest)

    def stop(self) -> list[TreeReading]:
        self._stop_event.set()
        self._wake.set()
        self.join()
        return self.readings
