"""The server stacks of the http scenario, and starting one: the gunicorn + Flask app, and the asgi stacks.

| stack | processes | where the model lives |
|---|---|---|
| `flask` | gunicorn master + N gthread workers (bench/serving/server.py) | each worker, or the master with --preload |
| `uvicorn` | `uvicorn --workers N` (spawned workers) | each worker loads its own copy (the Kokoro-FastAPI way) |
| `gunicorn-uvicorn` | gunicorn master + N uvicorn workers | each worker, or the master with --preload (copy-on-write) |
| `loop-threads` | one uvicorn process, one event loop | one resident model, N synthesis threads |
| `loop-workers` | one uvicorn process, one event loop | the topology's N worker processes (prefork, zygote) |

Every asgi stack listens on the loopback socket the caller made (`--fd` / `--bind fd://N`), gets its settings
in TTSLOAD_ASGI, and says each process is ready on the status pipe (bench/serving/server.py's wait_ready
reads it). What the servers would read from the environment to tune themselves is removed first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.plan import STACKS
from ttsload.bench.procs import package_root, python_module
from ttsload.bench.serving import server as server_tree
from ttsload.strategies.base import ModelFiles, StrategyError
from ttsload.strategies.registry import StrategySpec, resolve

APP = "ttsload.bench.serving.asgi_app"
ASGI_STACKS = tuple(stack for stack in STACKS if stack != "flask")
# uvicorn reads its worker count from WEB_CONCURRENCY and every option from UVICORN_*; gunicorn's are in server.py
TUNING_PREFIXES = ("UVICORN_",)


def unfit(stack: str, strategy: StrategySpec, preload: bool) -> str | None:
    """Why the stack cannot serve this strategy as asked (a scenario skips that pair and says so), or None."""
    if stack not in STACKS:
        return f"unknown server stack {stack!r} (one of {', '.join(STACKS)})"
    topology = strategy.topology_class
    if preload and stack not in ("flask", "gunicorn-uvicorn"):
        return f"--preload is gunicorn's: stack '{stack}' does not preload"
    if preload and not topology.serves_from_resident_model:
        return (f"--preload needs a topology that serves from a resident model: strategy '{strategy.name}' is "
                f"{strategy.topology}")
    if stack == "loop-threads" and not topology.serves_from_resident_model:
        return (f"stack loop-threads shares one resident model between threads: strategy '{strategy.name}' is "
                f"{strategy.topology}")
    if stack == "loop-workers" and not (topology.forks_from_loaded_parent or topology.forks_from_template):
        return (f"stack loop-workers feeds the topology's worker processes: strategy '{strategy.name}' is "
                f"{strategy.topology} (use prefork or zygote)")
    return None


def check(stack: str, strategy: StrategySpec, preload: bool) -> None:
    """One line, before any server starts, when the stack cannot serve this strategy as asked."""
    if reason := unfit(stack, strategy, preload):
        raise StrategyError(reason)


def ready_count(stack: str, workers: int) -> int:
    """How many server processes say they are ready: the one loop's process, else every worker."""
    return 1 if stack in ("loop-threads", "loop-workers") else workers


LAUNCHER = "ttsload.bench.serving.launch"


def command(stack: str, workers: int, limits: HttpLimits, listen_fd: int, preload: bool) -> list[str]:
    factory = f"{APP}:create_app"
    if stack == "gunicorn-uvicorn":
        return [*python_module("gunicorn"), "--config", f"python:{APP}", "--chdir", str(package_root()),
                "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers), "--timeout", "900",
                "--graceful-timeout", "5", "--bind", f"fd://{listen_fd}", *(["--preload"] if preload else []),
                f"{factory}()"]
    processes = workers if stack == "uvicorn" else 1
    return [*python_module("uvicorn"), "--factory", factory, "--fd", str(listen_fd), "--workers", str(processes),
            "--app-dir", str(package_root()), "--no-access-log", "--timeout-graceful-shutdown", "5",
            "--loop", "asyncio", "--http", "h11", "--lifespan", "on"]


def tuning_variables() -> list[str]:
    return sorted({*server_tree.tuning_variables(), *(k for k in os.environ if k.startswith(TUNING_PREFIXES))})


def start(stack: str, config: dict[str, Any], workers: int, limits: HttpLimits, listen_fd: int) -> subprocess.Popen:
    """The stack's server with the asgi app; `config`: strategy, model, threads, preload, events_fd, status_fd."""
    config = {**config, "stack": stack, "workers": workers, "limits": limits.to_json(), "parent_pid": os.getpid()}
    if dropped := tuning_variables():
        print(f"ttsload: {stack} server: not passed on: {', '.join(dropped)}", file=sys.stderr, flush=True)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["TTSLOAD_ASGI"] = json.dumps(config)
    fds = (config["events_fd"], config["status_fd"], listen_fd)
    program = launched(command(stack, workers, limits, listen_fd, bool(config.get("preload"))))
    return subprocess.Popen(program, pass_fds=fds, env=env, stdin=subprocess.DEVNULL)


def launched(program: list[str]) -> list[str]:
    """`python -m MODULE ARGS` as `python -m LAUNCHER OWNER_PID MODULE ARGS`: the server ends with this process."""
    at = program.index("-m")
    return [*program[:at], "-m", LAUNCHER, str(os.getpid()), *program[at + 1:]]


@contextmanager
def serving(stack: str, strategy: StrategySpec | str, model: ModelFiles, workers: int = 1,
            limits: HttpLimits | None = None, threads: int | None = 1,
            preload: bool = False) -> Iterator[server_tree.LiveServer]:
    """An asgi stack on loopback, ready, stopped (whole tree) on leaving; phase events dropped.

    `strategy` resolved, or a name (resolved here: the app receives it resolved, as a cell does)."""
    if isinstance(strategy, str):
        strategy = resolve(strategy)
    check(stack, strategy, preload)
    limits = limits or HttpLimits()
    listener = server_tree.listen_loopback(limits.read_timeout_s)
    port = listener.getsockname()[1]
    status_read, status_write = os.pipe()
    events = os.open(os.devnull, os.O_WRONLY)
    config = {"strategy": strategy.to_json(), "model": model.to_json(), "threads": threads, "preload": preload,
              "events_fd": events, "status_fd": status_write}
    process = start(stack, config, workers, limits, listener.fileno())
    listener.close()
    os.close(status_write)
    os.close(events)
    try:
        pids = server_tree.wait_ready(process, status_read, ready_count(stack, workers),
                                      time.monotonic() + server_tree.READY_TIMEOUT_S)
        yield server_tree.LiveServer(port, process, pids)
    finally:
        server_tree.stop(process, graceful=False)
        os.close(status_read)
