"""Orchestration: every repetition of every (strategy, model) cell runs in a fresh process.

The runner starts the process, timestamps the start, samples the memory of its whole tree from a
thread, reads the cell's events from a pipe under a deadline, takes the steady-state reading when
the requests are done, and hands everything to the result store as soon as the cell ends.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsload.bench import procs
from ttsload.bench.analysis.scenario_summary import phase_records
from ttsload.bench.analysis.summary import summarize
from ttsload.bench.cells import Cell, CellOutcome, file_safe
from ttsload.bench.cellspec import CellSpec, LimitProbe
from ttsload.bench.harness import cgroup, hostspeed, pagecache
from ttsload.bench.harness.memlimit import MemoryLimit
from ttsload.bench.harness.probes import TreeSampler, read_tree
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.events import Event
from ttsload.strategies.registry import StrategySpec, resolve

CELL_MODULE = "ttsload.bench.cell"  # its __main__ runs one measured cell
# Load events after which the sampler takes a full (PSS) reading: the peak during load sits around them.
FULL_READING_EVENTS = frozenset({Event.CONSTRUCT_DONE, Event.WEIGHTS_DONE, Event.FIRST_AUDIO})


@dataclass
class CellOptions:
    texts: list[str]
    cache: str = "warm"
    threads: int | None = None
    timeout_s: float = 900.0
    interval_s: float | None = 0.05  # None: sampler off (readings only at the cell's sync points)
    audio_dir: Callable[[Cell], Path | None] | None = None  # where a cell keeps its audio, if anywhere
    # A profiling pass starts the cell under a tool: a program in front of the interpreter
    # (["py-spy", "record", ..., "--"]) or interpreter arguments before the module (["-m", "memray", "run", ...]).
    command_prefix: list[str] = field(default_factory=list)
    interpreter_args: list[str] = field(default_factory=list)
    # Called with the live tree's root pid when a cell runs past its deadline, before the kill;
    # returns what it saved (paths or notes), kept in the failure record.
    on_deadline: Callable[[Cell, int], list[str]] | None = None
    # The physical-limit probe the cell runs before its imports (bench/cell/limits.py): memcpy always,
    # and for a cold cache the read bandwidth of a scratch file kept in `scratch_dir`. Off for profiling.
    limits: bool = True
    scratch_dir: Path | None = None


def run_cell(cell: Cell, options: CellOptions, log_path: Path,
             on_event: Callable[[dict[str, Any]], None] = lambda e: None,
             strategy: StrategySpec | None = None) -> CellOutcome:
    """Run one cell in a new process group; never raises for a failing strategy, only records it.

    `strategy` is the cell's strategy resolved (by the caller, once; else here): the cell receives it resolved.
    """
    strategy = strategy or resolve(cell.strategy)
    switched = [ModelFiles.from_json(m) for m in cell.plan.models]  # a switch cell reads them all
    pagecache.prepare([f for m in [cell.model, *switched] for f in m.files()], options.cache)
    audio = options.audio_dir(cell) if options.audio_dir else None
    # no --threads: as many as a container's CPU quota pays for (None, torch's own default, without one)
    threads = options.threads or cgroup.limits().cores()
    spec = CellSpec(strategy, cell.model, tuple(options.texts), cell.plan, threads,
                    str(audio) if audio else None, _limits(cell, options))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    limit = MemoryLimit(cell.plan.memory_limit_mb, file_safe(cell.id)) if cell.plan.memory_limit_mb else None
    log = open(log_path, "wb")  # an unwritable results folder stops the run (cmd_run), not this cell
    read_fd, write_fd = os.pipe()
    spec_fd = procs.spec_fd(spec.to_json())
    try:
        t0 = time.monotonic()
        # The log path is in the command line only so that `ps` tells which run a cell belongs to.
        command = procs.python_module(CELL_MODULE, str(spec_fd), str(write_fd), str(log_path),
                                      interpreter_args=options.interpreter_args)
        proc = subprocess.Popen(
            [*options.command_prefix, *command],
            pass_fds=(spec_fd, write_fd), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=_cell_environment(strategy),
            preexec_fn=limit.preexec if limit else None,
        )
    except OSError as exc:  # the process never started (argument list too long, a missing profiler, ...)
        os.close(read_fd)
        if limit:
            limit.close()
        return _not_started(cell, exc)
    finally:
        log.close()
        os.close(spec_fd)
        os.close(write_fd)
    if limit:
        limit.attach(proc.pid)
    outcome = CellOutcome(cell, t0, root=proc.pid)
    interval = None if cell.plan.sampler == "off" else options.interval_s
    sampler = TreeSampler(proc.pid, interval) if interval else None
    if sampler:
        sampler.start()
    try:
        timeout = float(cell.plan.timeout_s or options.timeout_s)
        _follow(proc, read_fd, outcome, t0 + timeout, on_event, sampler)
        if outcome.deadline_hit and options.on_deadline:
            outcome.evidence = options.on_deadline(cell, proc.pid)
            outcome.reason = "; ".join([outcome.reason, *outcome.evidence])
    finally:
        os.close(read_fd)
        if sampler:
            outcome.readings = sampler.stop()
            outcome.sampler_cpu_s = sampler.cpu_s
        _kill_group(proc)
        if limit:  # what the limit was and how often the OOM killer acted under it, kept as an event
            outcome.events.append({"event": Event.MEMORY_LIMIT, "t": time.monotonic(), **limit.facts()})
            limit.close()
    outcome.exit_code = proc.returncode
    if outcome.status == "ok" and proc.returncode != 0:
        outcome.status, outcome.reason = "failed", f"cell process exited with code {proc.returncode}"
    if outcome.status != "ok":
        outcome.log = _tail(log_path)
    return outcome


def _not_started(cell: Cell, exc: OSError) -> CellOutcome:
    """A cell whose process could not be started: recorded as failed, saying so, and the run goes on."""
    outcome = CellOutcome(cell, time.monotonic())
    outcome.status = "failed"
    outcome.reason = f"cell process could not start: {exc.strerror or exc}"
    return outcome


def _limits(cell: Cell, options: CellOptions) -> LimitProbe | None:
    """What the cell's limit probe measures: memcpy, plus the cold read when the page cache is cold."""
    if not options.limits:
        return None
    cold = options.cache == "cold" and options.scratch_dir is not None
    memcpy_mib = os.environ.get("TTSLOAD_MEMCPY_MIB")  # the test suite's smaller copy (recorded as memcpy_bytes)
    return LimitProbe(str(pagecache.scratch_file(options.scratch_dir)) if cold else None, str(cell.model.checkpoint),
                      int(memcpy_mib) * 2**20 if memcpy_mib else None)


def _follow(proc: subprocess.Popen, fd: int, outcome: CellOutcome, deadline: float,
            on_event: Callable[[dict[str, Any]], None], sampler: TreeSampler | None) -> None:
    """Read events until the process closes the pipe, fails, or runs past its deadline.

    Besides recording, the runner answers three kinds of event: `measure_root` moves the memory
    readings to the tree of the given pid (a server the cell started, not its load generator);
    `request_end` gets a reading of the tree right after it (leak trends), when sampling is on; and
    an event with `sync` gets a reading labelled by the event before the cell, blocked on its stdin,
    is let go (`requests_done` is the steady-state one).
    """
    pending = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome.status, outcome.deadline_hit = "failed", True
            outcome.reason = f"deadline: cell still running after {deadline - outcome.t0:.0f} s"
            return
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            event = json.loads(line)
            outcome.events.append(event)
            on_event(event)
            if event["event"] == Event.MEASURE_ROOT:
                outcome.root = event["root"]
                if sampler:
                    sampler.root = event["root"]
            elif event["event"] in FULL_READING_EVENTS and sampler:
                sampler.full_now()
            elif event["event"] == Event.REQUEST_END and sampler:
                outcome.after_request.append((event["index"], read_tree(outcome.root)))
            if event["event"] == Event.REQUESTS_DONE:
                outcome.steady = read_tree(outcome.root)
                _release(proc, last=not event.get("then_trim"))  # a trimmed reading follows
            elif event.get("sync"):
                outcome.marks.append((event, read_tree(outcome.root)))
                _release(proc, last=False)
            elif event["event"] == Event.ERROR:
                outcome.status, outcome.reason = "failed", event.get("reason", "unknown error")
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        outcome.status, outcome.reason = "failed", "cell process did not exit after its last event"
    if outcome.status == "ok" and outcome.steady is None:
        outcome.status = "failed"
        outcome.reason = f"cell process ended (code {proc.poll()}) before finishing its requests"


def _release(proc: subprocess.Popen, last: bool) -> None:
    """Let a cell blocked on its stdin go on; after the last sync point, close stdin."""
    try:
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        if last:
            proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """Nothing a cell started may outlive it: kill its whole process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    if proc.stdin and not proc.stdin.closed:
        proc.stdin.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _cell_environment(strategy: StrategySpec) -> dict[str, str] | None:
    """The environment of the cell process when its strategy's options need one (allocator, oneDNN, stream):
    set before the process starts, as the C libraries read it then; every worker inherits it."""
    from ttsload.strategies.allocator import process_environment

    return process_environment(strategy.option_map)


def _options_of(strategy: StrategySpec) -> dict[str, Any]:
    """The strategy's options (`name:key=value`), recorded with every row so a table can group by them."""
    options = strategy.option_map
    return {k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in options.items()}


def run_cells(cells: list[Cell], options: CellOptions, store: Any, run_id: str,
              on_event: Callable[[Cell, dict[str, Any]], None] = lambda c, e: None,
              on_done: Callable[[Cell, dict[str, Any]], None] = lambda c, r: None,
              stamp: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run cells one after another, writing each to the store as it ends. Returns the rows.

    `stamp` is added to every row: the machine and machine class, so a merged folder keeps each cell's machine.
    """
    rows = []
    for cell in cells:
        log_path = store.out / "logs" / f"{file_safe(cell.id)}__{run_id}.log"
        speed = hostspeed.measure()  # while no cell runs: the host's speed around this cell, for the gate
        strategy = resolve(cell.strategy)
        outcome = run_cell(cell, options, log_path, lambda event, cell=cell: on_event(cell, event), strategy)
        outcome.host_speed = speed
        row = summarize(outcome, run_id, options.cache)
        row["strategy_options"] = _options_of(strategy)
        row.update(stamp or {})
        store.write_cell(outcome.records(run_id) + phase_records(outcome, run_id), row)
        rows.append(row)
        on_done(cell, row)
    return rows
