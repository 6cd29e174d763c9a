"""CPU time of the cell's process tree, stamped on every event next to its wall time.

Wall time on a shared machine measures the neighbours as much as the code: a process that waits for
the other core is slower by the clock but spends the same CPU seconds. So every event carries `cpu`:
user + system seconds of this process (all threads, nanosecond clock), of its live children (psutil,
clock ticks) and of the children it already waited for (os.times). A phase's CPU is the difference of
two stamps, whatever process did the work (a spawned worker's load shows up in its parent's tree).
"""

from __future__ import annotations

import os
import time

import psutil

_SELF = psutil.Process()


def tree_cpu_s() -> float:
    """User + system CPU seconds of this process and every descendant, dead (waited) or alive."""
    waited = os.times()
    total = time.process_time() + waited.children_user + waited.children_system
    try:
        children = _SELF.children(recursive=True)
    except psutil.Error:
        return total
    for child in children:
        try:
            times = child.cpu_times()
        except psutil.Error:  # it ended between the listing and the read
            continue
        total += times.user + times.system
    return total
