"""Memory of a whole process tree, read from outside the measured processes.

psutil finds the tree; /proc/PID/smaps_rollup gives in one read what psutil's memory_full_info
reads too (RSS, PSS, USS) plus what it drops (Pss_Anon, Pss_File, Shared_*), so a mapped
checkpoint shows up as file-backed memory rather than anonymous. Sum PSS and USS over a tree;
RSS is reported summed only to show how much a naive sum over-counts shared pages.
"""

from __future__ import annotations

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


class TreeSampler(threading.Thread):
    """Reads a tree's memory every `interval_s` until stopped; keeps every reading.

    Reading smaps_rollup costs kernel time in proportion to what a process maps, and more while it
    is busy: ~15 ms a reading of one synthesizing vits process (22.5 s of CPU for 1470 readings).
    At a fixed 50 ms cadence that took 30 % of a core in single cells and 34-54 s per ~100 s http
    cell on this 2-core machine, CPU the measured servers then lacked (p50 latency +46 %). So the
    sampler spends at most `max_duty` of one core: after a reading that cost c seconds of CPU, the
    next one waits at least c / max_duty. The cadence a cell really got is in its row.
    """

    def __init__(self, root: int, interval_s: float = 0.05, max_duty: float = 0.05):
        super().__init__(name="ttsload-sampler", daemon=True)
        self.root = root
        self.interval_s = interval_s
        self.max_duty = max_duty
        self.readings: list[TreeReading] = []
        self.cpu_s = 0.0  # CPU time the sampler itself used: its direct cost on a 2-core machine
        self._stop_event = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            cpu = time.thread_time()
            reading = read_tree(self.root)
            if reading.processes:
                self.readings.append(reading)
            cost = time.thread_time() - cpu
            self.cpu_s += cost
            next_at = max(next_at + self.interval_s, time.monotonic() + cost / self.max_duty - cost)
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> list[TreeReading]:
        self._stop_event.set()
        self.join()
        return self.readings
