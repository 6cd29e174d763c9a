"""Idle unload as a strategy option, the way self-hosted TTS servers offer it (an auto-unload timeout):

    singleton:idle_unload=300        subprocess-worker:idle_unload=300

After SECONDS with no request in flight, a resident topology drops its model in-process (then gc.collect
and malloc_trim, so the freed heap can go back to the OS), and a worker topology ends its worker process.
The next request loads again; that load is recorded as a reload (event `model_reloaded`, with `load_s`).
Only topologies whose class sets `idle_unload = True` accept the option: a per-request topology holds
nothing between requests, and a forked tree's workers share one template the option cannot drop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ttsload.strategies.audio import Audio, AudioStream
from ttsload.strategies.reliability import _seconds  # the same parser as backoff= and liveness=

KEY = "idle_unload"


# Declared here, registered by strategies/options.py (key -> (one-line help, parser)), as reliability.py does.
OPTIONS: dict[str, tuple[str, Any]] = {
    KEY: ("seconds with no request before the model is unloaded (resident) or the worker ends (worker)",
          _seconds),
}


class IdleTimer:
    """Calls `on_idle` once when no request has been in flight for `seconds`; a new request re-arms it.

    `on_idle` runs while the timer's lock is held, so a request that arrives during the unload waits
    for it to finish and then reloads: it never meets a half-dropped model or a dying worker.
    """

    def __init__(self, seconds: float, on_idle: Callable[[float], None]):
        self.seconds = seconds
        self._on_idle = on_idle
        self._cond = threading.Condition()
        self._busy = 0
        self._last = time.monotonic()
        self._armed = True
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ttsload-idle-unload", daemon=True)
        self._thread.start()

    def _enter(self) -> None:
        with self._cond:
            self._busy += 1
            self._armed = True

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            self._last = time.monotonic()
            self._cond.notify_all()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Hold while a request is served: no unload can start until it ends."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def hold_stream(self, open_stream: Callable[[], AudioStream]) -> AudioStream:
        """The stream `open_stream` opens, counted as in flight from now until it ends or is closed."""
        self._enter()
        try:
            stream = open_stream()
        except BaseException:
            self._leave()
            raise

        def chunks() -> Iterator[Audio]:
            try:
                yield from stream
            finally:
                stream.close()
                self._leave()
        return AudioStream(chunks(), stream.kind)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._busy or not self._armed:
                    self._cond.wait()
                    continue
                idle = time.monotonic() - self._last
                if idle < self.seconds:
                    self._cond.wait(self.seconds - idle)
                    continue
                self._armed = False
                self._on_idle(idle)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()


def configure(topology: object, seconds: float) -> None:
    """Give `topology` the option's timeout; its class reads `idle_unload_s` when it starts."""
    topology.idle_unload_s = seconds  # type: ignore[attr-defined]


def refuse(name: str, topology: type, option_map: dict[str, Any]) -> str | None:
    """Why strategy `name` cannot take idle_unload (one line), or None when it can or does not ask."""
    if KEY in option_map and not getattr(topology, "idle_unload", False):
        return (f"strategy '{name}': option {KEY}: topology {getattr(topology, 'name', topology)!s} keeps no model "
                "to unload (resident and worker topologies do)")
    return None
