"""The served app against a hostile environment and hostile clients (issue #28): server-tuning variables do not
reach gunicorn, a client that stalls mid-request is cut off, and error bodies carry no exception text."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.serving.server import LiveServer, serving

HOSTILE_ENV = {"GUNICORN_CMD_ARGS": "--max-requests 1", "WEB_CONCURRENCY": "3"}  # a respawn per request, 3 workers
READ_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(tiny) -> Iterator[tuple[LiveServer, str]]:
    saved = {name: os.environ.get(name) for name in HOSTILE_ENV}
    os.environ.update(HOSTILE_ENV)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), serving("singleton", tiny, workers=1,
                                                       limits=HttpLimits(read_timeout_s=READ_TIMEOUT_S)) as live:
            yield live, said.getvalue()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def post(port: int, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/tts", body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


@pytest.mark.integration
def test_server_tuning_variables_do_not_reach_gunicorn_and_are_named(server):
    live, said = server
    assert "not passed to gunicorn: GUNICORN_CMD_ARGS, WEB_CONCURRENCY" in said
    assert len(live.worker_pids) == 1  # WEB_CONCURRENCY=3 would not matter anyway: --workers is given
    pids = {post(live.port, {"text": "hello there.", "seed": 1})[1]["x-worker-pid"] for _ in range(3)}
    assert pids == {str(live.worker_pids[0])}  # with --max-requests 1 every request would meet a new worker


@pytest.mark.integration
def test_a_client_that_stalls_in_its_headers_is_cut_off(server):
    live, _ = server
    with socket.create_connection(("127.0.0.1", live.port), timeout=60) as client:
        client.sendall(b"POST /tts HTTP/1.1\r\nHost: localhost\r\nContent-Type: appli")  # ... and nothing more
        try:
            answer = client.recv(4096)  # the server closes it after READ_TIMEOUT_S of silence
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    assert post(live.port, {"text": "still serving.", "seed": 2})[0] == 200


class _Broken:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def synthesize(self, text: str, seed: int) -> Any:
        raise self.exc


@pytest.mark.parametrize("exc, status", [
    (ValueError("index out of range in /home/someone/secret/model.pth"), 422),
    ("strategy", 503),
    (MemoryError("at 0xdeadbeef"), 503),
])
def test_error_bodies_are_generic_and_the_detail_goes_to_the_log(exc, status, caplog):
    from flask import Flask

    from ttsload.bench.serving import app as served
    from ttsload.bench.serving.guard import Admission
    from ttsload.strategies.base import StrategyError

    if exc == "strategy":
        exc = StrategyError("worker pid 4242 died reading /home/someone/secret/model.pth")
    limits = HttpLimits()
    app = Flask("hostile")
    served._routes(app, limits, Admission(limits))
    saved = served._state["server"]
    served._state["server"] = _Broken(exc)
    try:
        response = app.test_client().post("/tts", json={"text": "hello", "seed": 1})
    finally:
        served._state["server"] = saved
    assert response.status_code == status
    error = response.get_json()["error"]
    assert "secret" not in error and "0xdeadbeef" not in error and type(exc).__name__ not in error
    assert "see the server log" in error
    assert any("synthesis failed" in r.getMessage() and r.exc_info for r in caplog.records)
