"""The served side of the http scenario: a Flask app and the gunicorn hooks around it.

gunicorn runs this module twice over: as its config (`-c python:bench.http_app`, which picks up
`post_fork` and `post_worker_init` below) and as the app factory (`bench.http_app:create_app()`).
Everything the server needs comes from the cell through the TTSLOAD_HTTP environment variable
(JSON: strategy, model, threads, preload, limits, events_fd, status_fd).

Without --preload every worker builds the strategy's topology itself. With --preload the master
loads one resident model before forking, with ONE torch thread (libgomp hangs a child forked
after a parallel region ran) and then freezes the collector, so the workers share its pages;
each worker sets its own thread count right after the fork.

The app's limits (bench.serving.guard, bench.http_limits) come in the same variable: bad input
gets a 4xx, a full per-worker queue 503 with Retry-After, a request past the timeout 504.

Phase events go straight to the runner's events pipe (one os.write per line: atomic under
PIPE_BUF), and each worker tells the cell it is ready on a separate status pipe, so the cell can
wait for all N workers without reading the runner's pipe.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.procs import die_with_parent

if TYPE_CHECKING:  # the server's imports stay inside the functions that run in it
    from flask import Flask
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

    from ttsload.strategies.base import Audio, LoadedModel
from ttsload.bench.serving.guard import Admission, Rejected, check_content_type, parse_tts
from ttsload.strategies.events import Event

ENV = "TTSLOAD_HTTP"
# gunicorn settings read from this module: no control socket (gunicorn >= 25 opens a unix socket in
# ~/.gunicorn, shared by every server on the machine); older versions ignore the unknown name.
control_socket_disable = True
_state: dict[str, Any] = {"server": None, "worker": None, "child_threads": None}


def settings() -> dict[str, Any]:
    return json.loads(os.environ[ENV])


def _write_line(fd: int, record: dict[str, Any]) -> None:
    line = (json.dumps(record, default=str) + "\n").encode()
    if len(line) >= 4096:  # keep the write atomic on a pipe: drop detail, never interleave
        line = (json.dumps({k: record[k] for k in ("event", "t", "pid") if k in record}) + "\n").encode()
    os.write(fd, line)


def fd_hook(event: str, t: float | None = None, **fields: object) -> None:
    """The Hook strategies call inside server processes: same JSON lines as bench.cell.EventPipe."""
    fields.setdefault("pid", os.getpid())
    _write_line(settings()["events_fd"], {"event": event, "t": t if t is not None else time.monotonic(), **fields})


def _status(**record: object) -> None:  # written as JSON as it is
    """Tell the cell (not the runner) about readiness or a failure to start."""
    _write_line(settings()["status_fd"], {"pid": os.getpid(), **record})


class _Preloaded:
    """A resident model loaded in the master before fork; workers only synthesize with it."""

    def __init__(self, model: LoadedModel):
        self.model = model

    def synthesize(self, text: str, seed: int) -> Audio:
        from ttsload.strategies.base import serve_request

        return serve_request(self.model, text, seed)


def preload(config: dict[str, Any]) -> _Preloaded:
    """Load once in the master (bench/serving/preload.py); each worker sets its thread count after the fork."""
    from ttsload.bench.serving.preload import load_for_fork

    model, _state["loader"], _state["child_threads"] = load_for_fork(config, fd_hook)
    return _Preloaded(model)


def build(config: dict[str, Any]) -> Any:
    """Without preload: this worker builds and starts the strategy's topology, whatever it is."""
    from ttsload.strategies.base import ModelFiles
    from ttsload.strategies.registry import StrategySpec

    strategy = StrategySpec.from_json(config["strategy"])
    topology = strategy.build(ModelFiles.from_json(config["model"]), fd_hook, config.get("threads"))
    topology.start()
    return topology


def create_app() -> Any:
    """The gunicorn app factory: loads the model (master with --preload, else this worker) first."""
    from flask import Flask

    config = settings()
    try:
        _state["server"] = preload(config) if config.get("preload") else build(config)
    except BaseException as exc:
        _status(error=_one_line(exc))
        raise
    limits = HttpLimits.from_json(config.get("limits"))
    app = Flask("ttsload-http")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes  # 413 from Content-Length, body left unread
    _routes(app, limits, Admission(limits))
    return app


def _routes(app: Flask, limits: HttpLimits, admission: Admission) -> None:
    """GET /ready and POST /tts; every refusal is JSON {"error": ...}. A body left unread (413, 415) is
    gunicorn's to drop (27 drains at most 64 KiB of it, else closes the connection)."""
    from flask import Response, jsonify, request
    from werkzeug.exceptions import HTTPException

    from ttsload.strategies.base import StrategyError

    def refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Any:
        return jsonify(error=reason), status, headers or {}

    @app.errorhandler(Rejected)
    def rejected(exc: Rejected) -> Any:
        return refuse(exc.status, exc.reason, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:  # Flask's own 404, 405 (with Allow), 413, 400
        allow = exc.get_response().headers.get("Allow")
        return refuse(exc.code or 400, exc.description or exc.name, {"Allow": allow} if allow else None)

    @app.get("/ready")
    def ready() -> Any:
        loaded = _state["server"] is not None
        return jsonify(ready=loaded, pid=os.getpid()), (200 if loaded else 503)

    @app.post("/tts")
    def tts() -> Any:
        server = _state["server"]
        if server is None:
            return refuse(503, "model not loaded", {"Retry-After": str(limits.retry_after_s)})
        check_content_type(request.mimetype, request.mimetype_params, request.headers.get("Content-Type"))
        text, seed = parse_tts(request.get_data(cache=False), limits)
        try:
            audio = admission.run(server.synthesize, text, seed)
        except Rejected:
            raise
        # The bodies stay generic: exception text can carry paths and internals; the detail goes to the log.
        except (StrategyError, MemoryError):  # the serving side broke (a worker process died, memory ran
            app.logger.exception("synthesis failed")  # out): not the client's input, and it may pass
            return refuse(503, "the server could not synthesize now (see the server log); retry later",
                          {"Retry-After": str(limits.retry_after_s)})
        except Exception:  # noqa: BLE001 - the model could not synthesize this (valid) input
            app.logger.exception("synthesis failed")
            return refuse(422, "text could not be synthesized by this model (see the server log)")
        return Response(audio.wav.astype("<f4", copy=False).tobytes(), mimetype="application/octet-stream",
                        headers={"X-Sample-Rate": str(audio.sample_rate), "X-Worker-Pid": str(os.getpid())})


def _one_line(exc: BaseException) -> str:
    from ttsload.strategies.base import StrategyError

    text = str(exc) if isinstance(exc, StrategyError) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


# --- gunicorn server hooks (this module is also gunicorn's config) ---

# Imported as gunicorn's config in the master, whose parent started it: a killed cell or harness takes its
# server along. (Any other process that imports this module, e.g. a worker's spawned helper, is left alone.)
if ENV in os.environ and os.getppid() == settings().get("parent_pid"):
    die_with_parent(settings()["parent_pid"])


def post_fork(server: Arbiter, worker: Worker) -> None:
    """In each worker, right after the fork: it dies with its master, and sets its own torch thread count
    (the master ran with one)."""
    die_with_parent(worker.ppid)
    _state["worker"] = worker.age
    if _state["child_threads"] is not None and _state.get("loader") is not None:
        _state["loader"].set_threads(_state["child_threads"])


def post_worker_init(worker: Worker) -> None:
    """The app is loaded in this worker (or inherited from the master): it is ready to serve."""
    fd_hook(Event.WORKER_READY, worker_pid=os.getpid(), worker=worker.age)
    _status(ready=os.getpid(), worker=worker.age)
