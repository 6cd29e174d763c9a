"""What runs inside one measured process: start the strategy, serve the requests, report events.

Started by the runner as `python -P -m ttsload.bench.cell SPEC_FD EVENTS_FD LOG_PATH`: the spec (JSON) is read
from the inherited descriptor SPEC_FD (bench.procs.spec_fd); events go out as JSON lines on the inherited pipe
EVENTS_FD (stdout and stderr are free for library chatter and go to LOG_PATH, named only for `ps`).
The whole process group ends when the runner is gone (`watch_runner`), so a killed harness leaves no cell,
pool worker or server tree behind.
After the last request the process waits on stdin, so the runner can take the steady-state
memory reading of a process tree that is alive and idle. Kept light: torch and Coqui are only
imported by the strategy, inside the timed imports phase; the machine's memcpy and read bandwidth
(`limits.py`) are measured before it, when the runner asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import stat
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from ttsload.bench.cell.cputime import tree_cpu_s
from ttsload.bench.cell.reporting import steady_then_trimmed, timed_stream
from ttsload.bench.cellspec import CellSpec, read_limits
from ttsload.bench.procs import read_spec
from ttsload.strategies.events import Event


class EventPipe:
    """The hook strategies call: one JSON line per event, stamped with time.monotonic() and the tree's CPU time.

    The CPU stamp (`cpu`, bench/cell/cputime.py) is taken when the event reaches this process: for an
    event relayed from a worker, as soon as its parent relays it, which counts the worker's CPU so far.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._lock = threading.Lock()  # client threads of a scenario report at the same time
        self._pid = os.getpid()

    def __call__(self, event: str, t: float | None = None, **fields: Any) -> None:
        fields.setdefault("pid", os.getpid())
        fields.setdefault("cpu", tree_cpu_s())
        record = {"event": event, "t": t if t is not None else time.monotonic(), **fields}
        line = json.dumps(record, default=str) + "\n"
        if os.getpid() != self._pid:  # a forked worker: the lock and buffer it inherited may be mid-use
            os.write(self.stream.fileno(), line.encode())  # one write below PIPE_BUF: atomic on the pipe
            return
        with self._lock:
            self.stream.write(line)
            self.stream.flush()

    def sync(self, label: str, **fields: Any) -> None:
        """Ask the runner for a memory reading labelled `label` now, and wait until it has taken it."""
        self(Event.MARK, label=label, sync=True, **fields)
        sys.stdin.readline()


def save_audio(folder: Path, index: int, wav: Any) -> None:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{index:04d}.npy", wav)


def serve(spec: CellSpec, hook: EventPipe) -> None:
    from ttsload.strategies.base import request_seed

    topology = spec.strategy.build(spec.model, hook, spec.threads)
    topology.start()
    hook(Event.READY)
    for index, text in enumerate(spec.texts):
        hook(Event.REQUEST_START, index=index)
        cpu, start = tree_cpu_s(), time.monotonic()
        audio, streamed = timed_stream(topology.synthesize_stream(text, request_seed(text)), start)
        cpu_s = tree_cpu_s() - cpu
        hook(
            Event.REQUEST_END,
            index=index,
            chars=len(text),
            cpu_s=cpu_s,
            audio_s=audio.seconds,
            audio_sha256=hashlib.sha256(audio.wav.tobytes()).hexdigest(),
            **streamed,
        )
        if index == 0:
            hook(Event.FIRST_AUDIO)
        if spec.audio_dir:  # after the timed part: kept for the quality comparison
            save_audio(Path(spec.audio_dir), index, audio.wav)
    steady_then_trimmed(hook, topology.trim)
    topology.close()


def watch_runner(events_fd: int) -> bool:
    """Kill this cell's process group (the cell, its workers, a gunicorn tree, a load generator) once the runner
    is gone: the runner holds the only read end of the events pipe, and the kernel reports POLLERR on a write end
    with no reader. Blocking in poll costs no CPU in the measured process. False when the fd is not a pipe."""
    if not stat.S_ISFIFO(os.fstat(events_fd).st_mode):
        return False
    watched = os.dup(events_fd)  # never closed by anyone else, so the number cannot be reused under us

    def watch() -> None:
        poller = select.poll()
        poller.register(watched, select.POLLERR)
        while True:
            for _, flags in poller.poll():
                if flags & select.POLLERR:
                    os.killpg(0, signal.SIGKILL)
                if flags & select.POLLNVAL:
                    return

    threading.Thread(target=watch, name="runner-watch", daemon=True).start()
    return True


def main(argv: list[str]) -> int:
    events_fd = int(argv[2])
    watch_runner(events_fd)
    hook = EventPipe(os.fdopen(events_fd, "w", buffering=1))
    message = read_spec(int(argv[1]))
    hook(Event.STARTED)
    try:
        if probe := read_limits(message):  # before any import of the strategy: stdlib only
            from ttsload.bench.cell.limits import measure

            measure(probe, hook)
        spec = CellSpec.from_json(message)  # imports the strategy and model types (numpy): after the probe
        if spec.plan.kind != "single":
            from ttsload.bench.cell.kinds import run_plan

            run_plan(spec, hook)
        else:
            serve(spec, hook)
        from ttsload.strategies.allocator import in_effect  # after the timed work: it imports numpy

        hook(Event.RUNTIME_CONTROLS, **in_effect())  # what this process really ran with (allocator, arenas, ...)
    except BaseException as exc:
        from ttsload.bench.cellspec import SpecError
        from ttsload.strategies.base import StrategyError

        reason = str(exc) if isinstance(exc, (StrategyError, SpecError)) else f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        hook(Event.ERROR, reason=reason.splitlines()[0] if reason else type(exc).__name__)
        return 1
    hook(Event.EXIT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
