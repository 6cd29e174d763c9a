"""Inside a scenario's cell process: run its plan (a pool of workers, a model switcher, an HTTP server).

`bench.cell` hands over here when the spec carries a plan whose kind is not "single". Each kind
reports through the same hook (events to the runner) and ends with `requests_done`, after which it
waits on stdin while the runner reads the steady-state memory.
"""

from __future__ import annotations

import importlib
from typing import Any

KINDS = {  # kind -> "module:function(spec, plan, hook)"
    "pool": "bench.pool_cell:run_pool",
    "switch": "bench.switch_cell:run_switch",
    "http": "bench.http_cell:run_http",
}


def run_plan(spec: dict[str, Any], hook: Any) -> None:
    plan = spec["plan"]
    module, _, function = KINDS[plan["kind"]].partition(":")
    getattr(importlib.import_module(module), function)(spec, plan, hook)
