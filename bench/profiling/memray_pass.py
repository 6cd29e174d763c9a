"""memray: every allocation of a cell (native stacks included), its peak heap and where it was made.

The cell runs as `python -P -m memray run --native -o capture.bin -m ttsload.bench.cell ...`, so memray
tracks from interpreter start through load and the first synthesis. memray sees allocator and
mmap calls, not pages: an mmap'd checkpoint counts at its full length even when few of its
pages are resident, so for the mmap loaders its peak is not comparable with the harness's PSS.
It follows no spawned process: for a topology serving from a child it tracks the cell process only.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ttsload.bench.errors import ProfilerUnavailable
from ttsload.bench.profiling.coldstart import short_file
from ttsload.bench.profiling.job import ProfilePass
from ttsload.strategies.registry import loader_class

NAME = "memray"
MB = 1024 * 1024
MMAP_NOTE = ("memray counts an mmap'd file at its full length even when its pages are not resident: "
             "its peak is not comparable with the harness's PSS for mmap loaders")
VIEW = "flamegraph.html"  # the peak's flame graph


def require() -> None:
    if importlib.util.find_spec("memray") is None:
        raise ProfilerUnavailable(f"memray is not installed for {sys.executable}: pip install memray")


def _memray(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "memray", *args], capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"memray {args[0]} failed: {detail[-1] if detail else done.returncode}")


def read_stats(path: Path) -> dict[str, Any]:
    """Peak heap and allocation counts from `memray stats --json` output."""
    data = json.loads(path.read_text())
    peak = data["metadata"]["peak_memory"]
    return {
        "peak_bytes": peak,
        "peak_mb": round(peak / MB, 1),
        "allocations": data["total_num_allocations"],
        "allocated_mb": round(data["total_bytes_allocated"] / MB, 1),
        "native_traces": data["metadata"].get("has_native_traces"),
        "top_by_size": data["top_allocations_by_size"][:5],
        "allocators": data["allocator_type_distribution"],
    }


def at_peak(capture: Path, top: int = 5, depth: int = 6) -> dict[str, Any]:
    """When the heap peaked and what was live then (largest stacks first).

    `memray stats` ranks stacks by bytes allocated over the whole run; what holds the peak is
    the high-water-mark view, read here with memray's own FileReader.
    """
    from memray import FileReader

    reader = FileReader(str(capture))
    snapshots = list(reader.get_memory_snapshots())
    peak = max(snapshots, key=lambda snapshot: snapshot.heap) if snapshots else None
    live = sorted(reader.get_high_watermark_allocation_records(merge_threads=True), key=lambda a: -a.size)[:top]
    return {
        "peak_at_s": round((peak.time - snapshots[0].time) / 1000, 2) if peak else None,
        "rss_at_peak_mb": round(peak.rss / MB, 1) if peak else None,
        "live_at_peak": [{"mb": round(record.size / MB, 1), "allocations": record.n_allocations,
                          "stack": " < ".join(f"{function} ({short_file(file)}:{line})"
                                              for function, file, line in record.stack_trace(max_stacks=depth))}
                         for record in live],
    }


def profile(job: ProfilePass) -> dict[str, Any]:
    """Run the cell under memray, then write its stats and HTML views next to the capture."""
    require()
    capture = job.folder / "capture.bin"
    outcome = job.run("cell", interpreter_args=["-m", "memray", "run", "--native", "--force", "--quiet",
                                                "--output", str(capture)])
    notes = [MMAP_NOTE] if loader_class(job.spec.loader, job.cell.model.family).maps_checkpoint else []
    if job.spec.topology_class.serves_from_child_process:
        notes.append("memray tracked the cell process only, not the spawned worker (see the py-spy profile)")
    if not capture.is_file():
        return {"status": "failed", "reason": outcome.reason or "memray wrote no capture", "files": {}, "notes": notes}
    files = {"capture": job.relative(capture)}
    stats_path = job.folder / "stats.json"
    _memray("stats", "--json", "--force", "--output", str(stats_path), str(capture))
    files["stats"] = job.relative(stats_path)
    # --no-web: the page carries its own scripts, so it opens offline and beside the report
    _memray("flamegraph", "--no-web", "--force", "--output", str(job.folder / VIEW), str(capture))
    files[VIEW.removesuffix(".html")] = job.relative(job.folder / VIEW)
    stats = {**read_stats(stats_path), **at_peak(capture)}
    result = {"status": outcome.status, "files": files, "stats": stats, "notes": notes}
    if outcome.status != "ok":
        result["reason"] = outcome.reason
    return result
