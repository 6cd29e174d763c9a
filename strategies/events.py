"""The names of the events a cell reports through its hook, shared by the side that emits them (strategies,
the cell process, the http server) and the side that reads them (runner, analysis, reports).

A `str` enum: an event travels as JSON, so the runner reads back a plain string, and `Event.READY == "ready"`
holds both ways (also as a dict key), so records and recorded results folders need no conversion. A
misspelt member fails at import instead of matching nothing. Third-party loaders may still emit names of
their own: the Hook protocol takes any string, and the analysis ignores names it does not know.
"""

from __future__ import annotations

from enum import Enum


class Event(str, Enum):
    """Every event the harness emits or reads, by the part that emits it."""

    # the cell process (bench/cell/entry.py) and its limit probe
    STARTED = "started"
    LIMITS = "limits"
    READY = "ready"
    REQUEST_START = "request_start"
    REQUEST_END = "request_end"
    FIRST_AUDIO = "first_audio"
    REQUESTS_DONE = "requests_done"  # the steady-state reading is taken on it
    MARK = "mark"  # a labelled memory reading the cell waits for (EventPipe.sync)
    RUNTIME_CONTROLS = "runtime_controls"
    ERROR = "error"
    EXIT = "exit"
    # a loader's load (strategies/base.py): each ends a timed phase of cold start
    IMPORTS_DONE = "imports_done"
    LOAD_START = "load_start"
    VERIFY_DONE = "verify_done"
    CONSTRUCT_DONE = "construct_done"
    WEIGHTS_DONE = "weights_done"
    MODEL_READY = "model_ready"
    # topologies and process hosts (strategies/topologies.py, hosts.py)
    TEMPLATE_READY = "template_ready"
    ACCEPTING = "accepting"
    WORKER_SPAWNED = "worker_spawned"
    WORKER_FORKED = "worker_forked"
    WORKER_REQUESTED = "worker_requested"
    WORKER_READY = "worker_ready"
    WORKER_HUNG = "worker_hung"
    CHECKPOINT_CHANGED = "checkpoint_changed"
    IDLE_UNLOAD = "idle_unload"  # `idle_unload=S` (strategies/idle.py): model dropped or worker ended
    MODEL_RELOADED = "model_reloaded"  # the next request's load after an idle unload, with load_s
    # reliability options (strategies/reliability.py)
    LOAD_RETRY = "load_retry"
    LOAD_RECOVERED = "load_recovered"
    LOAD_GAVE_UP = "load_gave_up"
    LOAD_FALLBACK = "load_fallback"
    # scenario kinds (bench/cell/pool_kind.py, switch_kind.py, http_kind.py, faults.py)
    MEASURE_ROOT = "measure_root"  # the readings move to this pid's tree (the http server, not the load generator)
    PHASE_START = "phase_start"
    PHASE_END = "phase_end"
    SCALE_OUT = "scale_out"
    REQUEST_FAILED = "request_failed"
    REQUEST_RETRIED = "request_retried"
    WORKER_KILLED = "worker_killed"
    WORKER_FAILED = "worker_failed"
    WORKER_DIED = "worker_died"
    WORKER_REPLACED = "worker_replaced"
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"
    MODEL_LOAD_START = "model_load_start"
    MODEL_LOADED = "model_loaded"
    MODEL_EVICT = "model_evict"
    # the runner itself (bench/harness/runner.py)
    MEMORY_LIMIT = "memory_limit"

    def __str__(self) -> str:  # the name as it travels, also in f-strings and messages
        return self.value
