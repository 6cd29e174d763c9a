"""Fault drills inside a pool cell: one fault, fired while requests are in flight, against a private model copy.

- `sigkill` / `sigstop`: a busy worker is killed / stopped (hung) mid-request;
- `oom`: nothing is fired here: the runner put the cell's tree under a memory limit (plan.memory_limit_mb);
- `replace_checkpoint`: the checkpoint is atomically replaced by a file with another sha256;
- `delete_checkpoint`: the checkpoint is deleted;
- `hide_checkpoint`: the checkpoint is absent for `hide_s` seconds, then back (a transient fault for `retry=`).

Checkpoint drills work on a copy of the model folder made for the cell (never on TTSLOAD_HOME's files).
The drill says what it did (`fault`, `fault_cleared`); what the strategy did is in its own events.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ttsload.bench.plan import Plan
from ttsload.strategies.base import Hook, ModelFiles
from ttsload.strategies.events import Event

CHECKPOINT_DRILLS = ("replace_checkpoint", "delete_checkpoint", "hide_checkpoint")


def private_copy(files: ModelFiles) -> tuple[ModelFiles, Path]:
    """The model's files copied into a fresh temporary folder (returned, for removal), same sha256 manifest."""
    folder = Path(tempfile.mkdtemp(prefix="ttsload-fault-"))

    def moved(path: Path) -> Path:
        target = folder / path.name
        if not target.exists():
            shutil.copy2(path, target)
        return target

    copied = replace(files, config=moved(files.config), checkpoint=moved(files.checkpoint),
                     safetensors=moved(files.safetensors) if files.safetensors else None,
                     extras={role: moved(path) for role, path in files.extras.items()})
    return copied, folder


class Drill:
    """Fires `plan.fault` once, from its own thread, when `plan.fault_after` requests have been answered."""

    def __init__(self, plan: Plan, pool: Any, files: ModelFiles, hook: Hook):
        self.plan, self.pool, self.files, self.hook = plan, pool, files, hook
        self.fired = threading.Event()
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def on_progress(self, done: int) -> None:
        """Called by the client thread that just got an answer: the fault lands before it sends its next request."""
        if self.plan.fault and self.plan.fault != "oom" and done >= self.plan.fault_after:
            with self._lock:
                if self.fired.is_set():
                    return
                self.fired.set()
                self.fire()

    def fire(self) -> None:
        fault = self.plan.fault
        if fault in ("sigkill", "sigstop"):
            host = self._busy_host()
            os.kill(host.pid, signal.SIGKILL if fault == "sigkill" else signal.SIGSTOP)
            self.hook(Event.FAULT, fault=fault, worker=host.worker, worker_pid=host.pid)
            return
        path = self.files.checkpoint
        if fault == "replace_checkpoint":
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF  # one byte of the zip's end record: another sha256, same size
            temporary = path.with_name(path.name + ".new")
            temporary.write_bytes(bytes(data))
            os.replace(temporary, path)
        elif fault == "delete_checkpoint":
            path.unlink()
        elif fault == "hide_checkpoint":
            hidden = path.with_name(path.name + ".hidden")
            os.replace(path, hidden)
            self.hook(Event.FAULT, fault=fault, path=str(path), hide_s=self.plan.hide_s)

            def restore() -> None:
                time.sleep(self.plan.hide_s)
                os.replace(hidden, path)
                self.hook(Event.FAULT_CLEARED, fault=fault, path=str(path))

            thread = threading.Thread(target=restore, name="ttsload-fault-restore")
            thread.start()
            self.threads.append(thread)
            return
        self.hook(Event.FAULT, fault=fault, path=str(path))

    def _busy_host(self) -> Any:
        """A worker serving a request right now (the first one otherwise)."""
        return (self.pool.dispatcher.busy() or list(self.pool.dispatcher.hosts))[0]

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
