"""Inside a scenario's cell process: run its plan (a pool of workers, a model switcher, an HTTP server,
an idle unload).

`ttsload.bench.cell` hands over here when the spec's plan is of a kind other than "single". Each kind
reports through the same hook (events to the runner) and ends with `requests_done`, after which it
waits on stdin while the runner reads the steady-state memory (bench/cell/reporting.py).
"""

from __future__ import annotations

from collections.abc import Callable

from ttsload.bench.cell.http_kind import run_http
from ttsload.bench.cell.idle_kind import run_idle
from ttsload.bench.cell.pool_kind import run_pool
from ttsload.bench.cell.reporting import CellHook
from ttsload.bench.cell.switch_kind import run_switch
from ttsload.bench.cellspec import CellSpec

KINDS: dict[str, Callable[[CellSpec, CellHook], None]] = {"pool": run_pool, "switch": run_switch, "http": run_http,
                                                          "idle": run_idle}


def run_plan(spec: CellSpec, hook: CellHook) -> None:
    KINDS[spec.plan.kind](spec, hook)
