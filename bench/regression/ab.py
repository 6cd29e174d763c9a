"""Running an A/B gate: fresh-process cells of both sides, interleaved in one run, so both see the same noise.

Each cell of each pair is one `ttsload run` of one repetition, started with its side's own interpreter in
its side's own tree (bench/regression/sides.py), into a folder of its own: each side measures with its own
harness, and records its own host calibration before the cell (bench/harness/hostspeed.py), so every
value of a pair carries the host's speed around it.

Sequential mode orders the two cells of consecutive pairs A B, B A, A B, ... (ABBA): a host that drifts
slower across the run slows A and B alike over every two pairs. Duet mode runs A and B at the same time,
each pinned to a core of its own (sched_setaffinity, inherited by the cell) with one torch thread, so
both share whatever interference the host has at that moment (Bulej et al., ICPE 2020).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttsload.bench import atomic
from ttsload.bench.analysis import calibration
from ttsload.bench.regression.resultset import ResultSet
from ttsload.bench.regression.sides import Side

SEQUENTIAL, DUET = "sequential", "duet"
PAIRS_FILE = "ab.json"
FORMAT = "ttsload-ab-pairs"
CELL_TIMEOUT_S = 1800.0  # one repetition of one cell; the cell's own deadline is ttsload run's


@dataclass(frozen=True)
class AbPlan:
    """What an A/B run measures: (strategy, model) cells, pairs per cell, mode, and `ttsload run` options."""

    cells: list[tuple[str, str]]
    pairs: int
    mode: str = SEQUENTIAL
    run_args: list[str] = field(default_factory=list)  # --requests, --cache, ... given to every cell's run


@dataclass
class Pair:
    """One pair of one cell: each side's metric values and host calibration, or why a side gave none."""

    cell: str  # strategy/model/scenario of the plan (a model-folder side measures its own model in it)
    index: int
    order: str  # "AB", "BA", or "duet"
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # side -> metric -> value
    failed: dict[str, str] = field(default_factory=dict)  # side -> why it gave no values


def schedule(cells: int, pairs: int) -> list[tuple[int, int, str]]:
    """(pair index, cell index, order) in run order: pairs outermost. Each cell's order alternates from one
    of its pairs to the next, and neighbouring cells start opposite (A B, B A, then B A, A B, ...): every cell
    runs as often first as second, so neither a linear drift nor the cell that ran before can favour a side.
    (Alternating over the whole run instead gives each cell one fixed order whenever the cell count is even.)"""
    return [(index, cell, "AB" if (index + cell) % 2 == 0 else "BA") for index in range(pairs) for cell in range(cells)]


def cell_command(side: Side, strategy: str, model: str, out: Path, plan: AbPlan) -> list[str]:
    """One repetition of one cell, run by the side's interpreter: its own harness, no history line."""
    threads = ["--threads", "1"] if plan.mode == DUET else []
    return [str(side.python), "-P", "-m", "ttsload", "run", "--strategy", strategy,
            "--model", str(side.model) if side.model else model, "--repeat", "1", "--no-history",
            *plan.run_args, *threads, "--out", str(out)]


Launch = Callable[[Side, list[str], int | None], "subprocess.Popen[bytes]"]


def _launch(side: Side, command: list[str], core: int | None) -> subprocess.Popen[bytes]:
    # No warm-up process per cell (a run's first-cell fix): both sides' cells follow each other in one run, so
    # after the first pair every cell starts from the same warm page cache, and a ratio is a median over pairs.
    env = {**os.environ, "TTSLOAD_WARMUP": "0", **side.env}
    env.pop("PYTHONPATH", None)  # the side's interpreter imports its own ttsload, nothing this process points at
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    return subprocess.Popen(command, cwd=side.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=pin)


def cores() -> tuple[int, int]:
    """The two cores a duet pins its sides to: the last two this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise RuntimeError("duet mode needs two cores, this process may use one")
    return allowed[-2], allowed[-1]


def read_cell(folder: Path) -> dict[str, float]:
    """The metric values (host calibration included) of a one-repetition, one-cell run folder."""
    result = ResultSet.from_folder(folder)
    values: dict[str, float] = {}
    for metrics in result.cells.values():
        values.update({name: found[0] for name, found in metrics.items() if found})
    return values


def _finish(proc: subprocess.Popen[bytes], folder: Path) -> tuple[dict[str, float], str]:
    try:
        output, _ = proc.communicate(timeout=CELL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {}, f"no result after {CELL_TIMEOUT_S:.0f} s"
    try:
        values = read_cell(folder)
    except Exception as exc:  # noqa: BLE001 - any unreadable folder is this pair's failure, the run goes on
        tail = output.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
        return {}, f"ttsload run exited {proc.returncode}: {tail[0]}"
    return values, "" if values else f"ttsload run exited {proc.returncode} with no successful repetition"


def run(a: Side, b: Side, plan: AbPlan, out: Path, launch: Launch = _launch,
        on_pair: Callable[[Pair], None] = lambda pair: None) -> list[Pair]:
    """Every pair of every cell, in `schedule` order (or both sides at once in duet mode); written to
    out/ab.json after each pair, so an interrupted run keeps what it measured."""
    sides = {"A": a, "B": b}
    pinned = cores() if plan.mode == DUET else None
    pairs: list[Pair] = []
    for index, cell_index, order in schedule(len(plan.cells), plan.pairs):
        strategy, model = plan.cells[cell_index]
        pair = Pair(f"{strategy}/{model}/single", index, DUET if pinned else order)
        folders = {label: out / label / f"pair{index:03d}-{cell_index:02d}" for label in sides}
        commands = {label: cell_command(sides[label], strategy, model, folders[label], plan) for label in sides}
        if pinned:
            procs = {label: launch(sides[label], commands[label], core)
                     for label, core in zip("AB", pinned, strict=True)}
            found = {label: _finish(procs[label], folders[label]) for label in "AB"}
        else:
            found = {label: _finish(launch(sides[label], commands[label], None), folders[label]) for label in order}
        for label, (values, why) in found.items():
            if values:
                pair.values[label] = values
            else:
                pair.failed[label] = why
        pairs.append(pair)
        save(out, a, b, plan, pairs)
        on_pair(pair)
    return pairs


def save(out: Path, a: Side, b: Side, plan: AbPlan, pairs: list[Pair]) -> Path:
    path = out / PAIRS_FILE
    data = {"format": FORMAT, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "sides": {s.label: {"spec": s.spec, "kind": s.kind, "commit": s.commit, "layered": s.layered,
                                "model": str(s.model) if s.model else None, "env": s.env} for s in (a, b)},
            "plan": asdict(plan), "pairs": [asdict(p) for p in pairs]}
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def load(path: Path) -> tuple[dict[str, Any], list[Pair]]:
    """A saved A/B run (out/ab.json, or its folder): its header and its pairs."""
    path = path / PAIRS_FILE if path.is_dir() else path
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved A/B run ({FORMAT})")
    return data, [Pair(**p) for p in data["pairs"]]


def host_line(pairs: list[Pair]) -> str:
    """The host calibration of each side over the run: with both sides interleaved, they should agree."""
    said = []
    for part in calibration.PARTS:
        column = calibration.COLUMN.format(part)
        found = {label: [p.values[label][column] for p in pairs if column in p.values.get(label, {})]
                 for label in "AB"}
        if found["A"] and found["B"]:
            a, b = statistics.median(found["A"]), statistics.median(found["B"])
            said.append(f"{part.removesuffix('_s')} A {1000 * a:.0f} ms / B {1000 * b:.0f} ms")
    return "host calibration per side (median over its cells): " + ("; ".join(said) or "none recorded")
