"""Profiling passes: a cell run under memray or py-spy, apart from every timed cell.

A profiler perturbs what it observes, so a profiled cell is never a timed cell: it writes only
a `profile` record (which cell, which tool, the files it left, their headline numbers) and its
files under DIR/profiles/<cell>/<tool>/, never a `cell` row of summary.csv. The tools live in
profile_memray.py and profile_pyspy.py; each takes a ProfilePass and returns what it found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.table import Table

from ttsload.bench.cells import Cell, file_safe
from ttsload.bench.errors import ProfilerUnavailable, UsageError
from ttsload.bench.harness import runner
from ttsload.bench.profiling import memray_pass as profile_memray
from ttsload.bench.profiling import pyspy_pass as profile_pyspy
from ttsload.bench.profiling.job import ProfilePass
from ttsload.bench.results import ResultStore
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import StrategySpec

TOOLS: dict[str, Any] = {"memray": profile_memray, "py-spy": profile_pyspy}
# Profiled scenarios: one cell, load and first synthesis. A soak under memray with Python allocators
# traced gave a 91 MB capture for 60 requests and a flame graph that took over 6 minutes to render.
SCENARIOS = ("single",)
PROFILES, DUMPS = "profiles", "dumps"


def parse_tools(text: str) -> list[str]:
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown or not tools:
        raise UsageError(f"unknown profiler '{','.join(unknown) or text}': choose from {', '.join(TOOLS)}")
    return list(dict.fromkeys(tools))


def check_scenario(name: str) -> str:
    if name not in SCENARIOS:
        raise UsageError(f"scenario '{name}' cannot be profiled yet: profiling supports {', '.join(SCENARIOS)} "
                         "(one cell's load and first synthesis)")
    return name


def unavailable(tool: str) -> str | None:
    """Why a tool cannot run here (one line with the fix), or None."""
    try:
        TOOLS[tool].require()
    except ProfilerUnavailable as exc:
        return str(exc)
    return None


def safe_name(cell: Cell) -> str:
    return file_safe(f"{cell.strategy}__{cell.model.name}__{cell.scenario}")


def profile_cell(tool: str, spec: StrategySpec, model: ModelFiles, scenario: str, out: Path, run_id: str,
                 options: runner.CellOptions) -> dict[str, Any]:
    """Run one profiling pass and return its `profile` record (never raises for a failing cell)."""
    cell = Cell(spec.name, model, 0, scenario)
    options = replace(options, limits=False)  # the limit probe would land in the profile of cold start
    folder = out / PROFILES / safe_name(cell) / tool
    job = ProfilePass(cell, out, folder, options, spec)
    record: dict[str, Any] = {"type": "profile", "pass": "profile", "run_id": run_id, "cell": cell.id,
                              "strategy": spec.name, "model": model.name, "scenario": scenario, "tool": tool,
                              "folder": job.relative(folder), "requests": len(options.texts)}
    try:
        record.update({"status": "ok", "reason": "", **TOOLS[tool].profile(job)})
    except ProfilerUnavailable as exc:
        record.update({"status": "unavailable", "reason": str(exc), "files": {}})
    except RuntimeError as exc:  # a report step of the tool failed after the cell ran
        record.update({"status": "failed", "reason": str(exc), "files": {}})
    return record


def profile_cells(tools: list[str], specs: list[StrategySpec], models: list[ModelFiles], scenario: str, out: Path,
                  run_id: str, options: runner.CellOptions, store: ResultStore,
                  on_record: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Every (tool, strategy, model) pass one after another; each record is stored as it ends.

    A tool that is missing or cannot attach gets one `unavailable` record and is skipped for the
    remaining cells; the other tools go on.
    """
    records = []
    for tool in tools:
        if problem := unavailable(tool):
            records.append({"type": "profile", "pass": "profile", "run_id": run_id, "tool": tool,
                            "status": "unavailable", "reason": problem, "files": {}})
            store.append(records[-1:])
            on_record(records[-1])
            continue
        for model in models:
            for spec in specs:
                if records and records[-1]["tool"] == tool and records[-1]["status"] == "unavailable":
                    break
                records.append(profile_cell(tool, spec, model, scenario, out, run_id, options))
                store.append(records[-1:])
                on_record(records[-1])
    return records


def deadline_evidence(out: Path) -> Callable[[Cell, int], list[str]]:
    """The runner's on_deadline hook: py-spy stacks of every process of a hung cell, before the kill."""

    def dump(cell: Cell, root: int) -> list[str]:
        folder = out / DUMPS / file_safe(cell.id)
        return profile_pyspy.dump_tree(folder, root)

    return dump


def cold_start_table(record: dict[str, Any]) -> Table:
    """Where the time goes in cold start, from a py-spy record."""
    table = record["cold_start"]
    out = Table(title=f"where cold start goes: {record['strategy']} on {record['model']} "
                      f"(py-spy samples, {table['sampled_cold_start_s']:.2f} s on CPU)")
    for header in ("phase", "s", "share", "top frames (inclusive s)"):
        out.add_column(header, justify="right" if header in ("s", "share") else "left")
    for row in table["rows"]:
        frames = "; ".join(f"{f['name']} ({f['file']}) {f['seconds']:.2f}" for f in row["top_frames"])
        out.add_row(row["phase"], f"{row['seconds']:.2f}", f"{row['share']:.0%}", frames)
    return out


def describe(record: dict[str, Any], out: Path) -> list[Any]:
    """What the terminal shows for a record: a status line, its files, and the cold-start table."""
    head = f"profile {record['tool']} {record.get('cell', '')}: {record['status']}"
    if record["status"] != "ok":
        return [f"{head}: {record['reason']}"]
    lines: list[Any] = [head]
    if "stats" in record:
        stats = record["stats"]
        lines.append(f"  memray peak heap {stats['peak_mb']:.1f} MiB at {stats['peak_at_s']} s of tracking, "
                     f"{stats['allocations']} allocations ({stats['allocated_mb']:.0f} MiB allocated in all)")
        lines += [f"    live at peak: {live['mb']:.1f} MiB in {live['allocations']}: {live['stack']}"
                  for live in stats["live_at_peak"][:3]]
    lines += [f"  {name}: {out / path}" for name, path in record["files"].items()]
    lines += [f"  note: {note}" for note in record.get("notes", [])]
    if "cold_start" in record:
        lines.append(cold_start_table(record))
    return lines
