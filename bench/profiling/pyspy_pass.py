"""py-spy: sampled stacks of a cell's cold start, and stack dumps of a tree that hit its deadline.

py-spy reads another process's memory (ptrace / process_vm_readv). Starting the cell under
`py-spy record` makes the cell its child, which most containers allow; dumping a running tree
from the harness is not a parent-child relation and needs CAP_SYS_PTRACE (or root, or
kernel.yama.ptrace_scope=0). Either failure becomes one line that says how to fix it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.bench.errors import ProfilerUnavailable
from ttsload.bench.harness.probes import tree_pids
from ttsload.bench.profiling import coldstart
from ttsload.bench.profiling.job import ProfilePass
from ttsload.strategies.events import Event

if TYPE_CHECKING:
    from ttsload.bench.cells import CellOutcome

NAME = "py-spy"
INSTALL = "pip install py-spy"
PTRACE_FIX = ("run as root, or give the container CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE), "
              "or allow it with sysctl kernel.yama.ptrace_scope=0")
# py-spy's default is 100 samples per second: enough for phases of a tenth of a second. Faster phases
# (a tiny model's construction takes ~40 ms) need more: TTSLOAD_PYSPY_RATE sets it.
RATE = int(os.environ.get("TTSLOAD_PYSPY_RATE", "100"))
DUMP_TIMEOUT_S = 20.0


def executable() -> str | None:
    """py-spy on PATH or beside this interpreter (a venv's bin/ is often not on PATH)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(NAME, path=search)


def require() -> str:
    found = executable()
    if found is None:
        raise ProfilerUnavailable(f"py-spy is not installed (not on PATH nor beside {sys.executable}): {INSTALL}")
    return found


def attach_problem(output: str) -> str | None:
    """One line for a py-spy failure to attach, from what py-spy printed; None if it did not say so."""
    lowered = output.lower()
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return f"py-spy cannot attach to the cell's processes (ptrace not permitted): {PTRACE_FIX}"
    return None


def record_prefix(output: Path, fmt: str) -> list[str]:
    """Command in front of the cell: record until it exits, following any worker it starts.

    --subprocesses always: it costs nothing for a single process, and catches workers of any
    topology (including third-party ones) without the harness knowing their internals.
    """
    return [require(), "record", "--output", str(output), "--format", fmt, "--rate", str(RATE),
            "--subprocesses", "--"]


def dump_tree(folder: Path, root: int) -> list[str]:
    """Save `py-spy dump` of every process of a live tree; return one note for the failure record.

    Called before a cell that ran past its deadline is killed, so a hung worker leaves its stacks.
    """
    found = executable()
    if found is None:
        return [f"no stack dumps of the hung cell: py-spy is not installed ({INSTALL})"]
    folder.mkdir(parents=True, exist_ok=True)
    saved, problems, pids = [], [], tree_pids(root)
    for pid in pids:
        try:
            done = subprocess.run([found, "dump", "--pid", str(pid)], capture_output=True, text=True,
                                  timeout=DUMP_TIMEOUT_S)
            text = done.stdout + done.stderr
        except subprocess.TimeoutExpired:
            text, done = f"py-spy dump --pid {pid} did not answer within {DUMP_TIMEOUT_S:.0f} s", None
        (folder / f"py-spy-dump-{pid}.txt").write_text(text)
        if done is not None and done.returncode == 0:
            saved.append(pid)
        elif problem := attach_problem(text):
            problems.append(problem)
    note = f"py-spy dump of {len(saved)} of {len(pids)} processes in {folder}"
    return [note, *dict.fromkeys(problems)]


def profile(job: ProfilePass) -> dict[str, Any]:
    """Record cold start twice (speedscope JSON, then an SVG flame graph) and tabulate its phases.

    py-spy writes one format per recording; two fresh processes of the same cell cost one more
    cold start and keep both files true to what py-spy saw.
    """
    require()
    files: dict[str, str] = {}
    cold_starts = []
    for fmt, name in (("speedscope", "cold-start.speedscope.json"), ("flamegraph", "cold-start.svg")):
        target, log = job.folder / name, job.folder / f"cell-{fmt}.log"
        outcome = job.run(log.stem, command_prefix=record_prefix(target, fmt))
        written = target.is_file() and target.stat().st_size > 0
        if written:
            files[fmt] = job.relative(target)
        if outcome.status != "ok":
            problem = attach_problem(log.read_text(errors="replace"))
            if problem:
                raise ProfilerUnavailable(problem)
            return {"status": "failed", "reason": f"{outcome.reason} ({job.relative(log)})", "files": files}
        if not written:
            raise ProfilerUnavailable(f"py-spy wrote no {fmt} file for a cell that ran; see {log}")
        cold_starts.append(_cold_start(outcome))
    table = coldstart.phase_table(job.folder / "cold-start.speedscope.json")
    return {"status": "ok", "files": files, "cold_start": table, "rate_hz": RATE,
            "under_profiler_cold_start_s": cold_starts}


def _cold_start(outcome: CellOutcome) -> float | None:
    first = next((e["t"] for e in outcome.events if e["event"] == Event.FIRST_AUDIO), None)
    return round(first - outcome.t0, 3) if first is not None else None
