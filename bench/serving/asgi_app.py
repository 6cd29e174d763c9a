"""The asgi stacks' app: FastAPI with OpenAI's `POST /v1/audio/speech`, streamed, and `/health`, `/ready`.

One module for every stack (bench/serving/stacks.py starts them): it is the uvicorn app factory
(`create_app`, in every uvicorn worker), gunicorn's app (`create_app()`) and gunicorn's config
(`post_fork`). Settings come from the TTSLOAD_ASGI environment variable (JSON: stack, strategy, model,
threads, workers, preload, limits, events_fd, status_fd, parent_pid).

Where the model lives:
- without preload, each serving process builds the strategy's topology in a background thread after
  it starts, so `/health` answers at once and `/ready` is 503 until the model is loaded;
- with preload (gunicorn --preload), the master loads one resident model before it forks, with one
  torch thread and a frozen collector (as bench/serving/app.py does for Flask), and each worker
  shares its pages.
Synthesis runs in `synthesis_threads` threads per process (bench/serving/streams.py): one per uvicorn or
gunicorn worker, `workers` for the one-loop stacks (threads over one resident model, or threads feeding
the topology's worker processes).

Events and readiness go to the cell through pipes it passed to the server's first process. uvicorn's
workers are spawned (a fresh interpreter keeps no inherited descriptor), so a process whose parent is not
the cell opens its parent's copy through /proc/PPID/fd/N: the same pipe, whatever its start method.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import AsyncIterator
from functools import cache
from typing import TYPE_CHECKING, Any

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.procs import die_with_parent
from ttsload.strategies.events import Event

if TYPE_CHECKING:
    from gunicorn.workers.base import Worker

    from ttsload.strategies.base import AudioStream, LoadedModel

ENV = "TTSLOAD_ASGI"
ONE_LOOP_STACKS = ("loop-threads", "loop-workers")
_state: dict[str, Any] = {"server": None, "error": None, "preloaded": None, "child_threads": None, "loader": None}


@cache
def settings() -> dict[str, Any]:
    return json.loads(os.environ[ENV])


_fds: dict[tuple[int, str], int] = {}


def _fd(name: str) -> int:
    """This process's descriptor for the cell's pipe `name` (events_fd, status_fd)."""
    number = settings()[name]
    if os.getppid() == settings().get("parent_pid"):  # the server's first process: it was handed the pipe
        return number
    key = (os.getpid(), name)
    if key not in _fds:
        _fds[key] = os.open(f"/proc/{os.getppid()}/fd/{number}", os.O_WRONLY)
    return _fds[key]


def _write(name: str, record: dict[str, Any]) -> None:
    line = (json.dumps(record, default=str) + "\n").encode()
    if len(line) >= 4096:  # one write under PIPE_BUF stays atomic: drop detail, never interleave
        kept = {k: record[k] for k in ("event", "t", "pid", "error", "ready") if k in record}
        line = (json.dumps(kept) + "\n").encode()
    try:
        os.write(_fd(name), line)
    except OSError:  # the cell is gone; the server dies with it
        pass


def hook(event: str, t: float | None = None, **fields: object) -> None:
    """The Hook strategies call in server processes: the runner's event lines."""
    fields.setdefault("pid", os.getpid())
    _write("events_fd", {"event": event, "t": t if t is not None else time.monotonic(), **fields})


def synthesis_threads() -> int:
    return int(settings().get("workers", 1)) if settings().get("stack") in ONE_LOOP_STACKS else 1


class _Preloaded:
    """A resident model loaded in gunicorn's master; each worker streams from the shared copy."""

    def __init__(self, model: LoadedModel):
        self.model = model

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        from ttsload.strategies.base import serve_stream

        return serve_stream(self.model, text, seed)


def _preload() -> _Preloaded:
    from ttsload.bench.serving.preload import load_for_fork

    model, _state["loader"], _state["child_threads"] = load_for_fork(settings(), hook)
    return _Preloaded(model)


def _load_in_background() -> None:
    """Build and start the strategy's topology in this process; readiness (or the failure) goes to the cell."""
    from ttsload.strategies.base import ModelFiles
    from ttsload.strategies.registry import StrategySpec

    config = settings()
    try:
        workers = int(config.get("workers", 1)) if config.get("stack") == "loop-workers" else 1
        topology = StrategySpec.from_json(config["strategy"]).build(ModelFiles.from_json(config["model"]), hook,
                                                     config.get("threads"), workers)
        topology.start()
        _state["server"] = topology
    except BaseException as exc:  # noqa: BLE001 - the cell's wait for readiness raises it
        _state["error"] = _one_line(exc)
        _write("status_fd", {"pid": os.getpid(), "error": _state["error"]})
        return
    _ready()


def _ready() -> None:
    hook(Event.WORKER_READY, worker_pid=os.getpid())
    _write("status_fd", {"pid": os.getpid(), "ready": os.getpid()})


def _one_line(exc: BaseException) -> str:
    from ttsload.strategies.base import StrategyError

    text = str(exc) if isinstance(exc, StrategyError) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


def create_app() -> Any:
    """The app; with preload (gunicorn's master imports it before forking) the model is loaded here."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from ttsload.bench.serving.asgi_routes import add_routes
    from ttsload.bench.serving.streams import Streams

    config = settings()
    if config.get("preload") and _state["preloaded"] is None:
        try:
            _state["preloaded"] = _preload()
        except BaseException as exc:
            _write("status_fd", {"pid": os.getpid(), "error": _one_line(exc)})
            raise
    limits = HttpLimits.from_json(config.get("limits"))
    streams = Streams(limits, synthesis_threads())

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        if _state["preloaded"] is not None:  # a forked worker: the master's model, this worker's threads
            if _state["loader"] is not None and _state["child_threads"]:
                _state["loader"].set_threads(_state["child_threads"])
            _state["server"] = _state["preloaded"]
            _ready()
        else:
            threading.Thread(target=_load_in_background, name="ttsload-load", daemon=True).start()
        yield
        streams.close()
        server = _state["server"]
        if server is not None and hasattr(server, "close"):
            server.close()

    app = FastAPI(title="ttsload asgi", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    add_routes(app, limits, streams, _state, config)
    return app


# --- process set-up (this module is also gunicorn's config) ---

if ENV in os.environ and os.getppid() == settings().get("parent_pid"):
    die_with_parent(settings()["parent_pid"])  # the server's first process dies with the cell
elif ENV in os.environ:
    die_with_parent(os.getppid())  # a spawned uvicorn worker dies with its supervisor


def post_fork(server: object, worker: Worker) -> None:
    """gunicorn: each worker dies with its master."""
    die_with_parent(worker.ppid)
