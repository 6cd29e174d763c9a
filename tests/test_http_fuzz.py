"""The hardened http app against hostile input: stated refusals, a full queue, a timeout, and a fuzz
campaign of generated raw requests, all on a live gunicorn server with the real tiny model."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.conftest import ttsload
from ttsload.bench.harness.fuzz_requests import RawRequest
from ttsload.bench.harness.http_fuzz import NO_RESPONSE, campaign, describe, send, synthesize
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.serving.loadgen import HttpStatus, post_tts
from ttsload.bench.serving.server import LiveServer, serving

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

LIMITS = HttpLimits(max_text_chars=200, max_body_bytes=16 * 1024, queue=2, request_timeout_s=60)
ALLOWED = {200, 400, 404, 405, 413, 415, 422, 503, 504}  # 422: a valid text the model cannot speak
FUZZ_BODIES, FUZZ_BUDGET_S = 2000, 20.0  # past the budget, examples are drawn but not sent
MEMORY_BOUND = 64 * 2**20  # anonymous PSS growth of the server tree over the campaign, after a warm-up


@pytest.fixture(scope="module")
def server(tiny) -> Iterator[LiveServer]:
    with serving("singleton", tiny, workers=1, limits=LIMITS) as live:
        yield live


def raw(method: str, path: str, body: bytes = b"", content_type: str | None = "application/json",
        length: int | None = None) -> RawRequest:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    head += [f"Content-Type: {content_type}"] if content_type is not None else []
    head += [f"Content-Length: {len(body) if length is None else length}"]
    return RawRequest(("\r\n".join(head) + "\r\n\r\n").encode() + body, "test")


def response(port: int, request: RawRequest) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of one request (the body is held open: the client never half-closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(request.data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body.startswith(b"{") else {}


def tts(text: object = "hello world", seed: object = 1, **extra: object) -> bytes:
    return json.dumps({"text": text, "seed": seed, **extra}).encode()


@pytest.mark.parametrize("body, status, reason", [
    (b"{", 400, "body is not UTF-8 JSON"),
    (b"\xff\xfe{}", 400, "body is not UTF-8 JSON"),
    (b'{"text": "hi", "seed": NaN}', 400, "NaN is not JSON"),
    (b'[1, 2]', 400, "must be a JSON object"),
    (json.dumps({"seed": 1}).encode(), 400, "missing field 'text'"),
    (json.dumps({"text": "hi"}).encode(), 400, "missing field 'seed'"),
    (tts(text=["hi"]), 400, "text must be a string, got list"),
    (tts(seed="1"), 400, "seed must be an integer, got str"),
    (tts(seed=True), 400, "seed must be an integer, got bool"),
    (tts(seed=2**64), 400, "seed must be in [0, 2**32)"),
    (tts(text=" \n"), 400, "text is empty"),
    (b'{"text": "\\ud800", "seed": 1}', 400, "lone surrogate"),
    (tts(voice="x"), 400, "unknown field(s) voice"),
    (tts(text="a" * 201), 413, "text is 201 characters, over the limit of 200"),
])
def test_bad_input_is_refused_with_the_stated_status(server, body, status, reason):
    got, _, answer = response(server.port, raw("POST", "/tts", body))
    assert (got, reason in answer.get("error", "")) == (status, True), answer


def test_a_huge_content_length_is_refused_from_the_header_without_reading_the_body(server):
    # The body is never sent: had the server tried to read it, recv would wait out the 60 s timeout.
    got, _, answer = response(server.port, raw("POST", "/tts", b"{", length=10**12))
    assert got == 413, answer


def test_other_content_types_routes_and_methods(server):
    assert response(server.port, raw("POST", "/tts", tts(), content_type="text/plain"))[0] == 415
    assert response(server.port, raw("POST", "/tts", tts(), content_type=None))[0] == 415
    assert response(server.port, raw("POST", "/nope", tts()))[0] == 404
    status, headers, _ = response(server.port, raw("GET", "/tts"))
    assert status == 405 and "POST" in headers["allow"]
    assert response(server.port, raw("GET", "/ready"))[0] == 200
    assert synthesize(server.port, "a valid text still gets audio") == 200


def test_fuzzed_requests_never_get_a_500_and_leave_the_server_flat(server):
    workers = {p.pid for p in psutil.Process(server.pid).children()}

    def check(request: RawRequest, status: int | str) -> None:
        assert status != 500, request
        # a request whose body the client cut short may see the connection closed instead of an answer
        assert status in ALLOWED or (status == NO_RESPONSE and request.close_early), (status, request)

    tally = campaign(server.port, server.pid, FUZZ_BODIES, FUZZ_BUDGET_S, LIMITS, check)
    print("\n".join(describe(tally, LIMITS)))
    assert tally.sent >= 100 and tally.server_errors == 0
    assert {200, 400, 413, 415} <= set(tally.statuses)  # the generator reaches every refusal and real audio
    assert tally.alive_after
    assert {p.pid for p in psutil.Process(server.pid).children()} == workers  # no worker died or was replaced
    assert tally.memory_after["pss_anon"] - tally.memory_before["pss_anon"] < MEMORY_BOUND, tally.to_json()


def test_a_full_queue_gets_503_with_retry_after_and_a_timeout_504_and_the_worker_recovers(tiny):
    limits = HttpLimits(max_text_chars=1000, queue=1, request_timeout_s=0.2, retry_after_s=3)
    long_text = ("the quick voice of a speech model. " * 15)[:500]  # far over 0.2 s of synthesis, tiny model
    with serving("singleton", tiny, workers=1, limits=limits) as live:
        worker = live.worker_pids
        answers: list[tuple[int, dict[str, str], dict]] = []
        clients = [threading.Thread(target=lambda: answers.append(response(live.port, raw("POST", "/tts",
                                                                                          tts(long_text)))))
                   for _ in range(3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        # one admitted, answered 504 at the timeout; the other two turned away at once, never queued
        assert sorted(status for status, _, _ in answers) == [503, 503, 504], answers
        timed_out = next(a for a in answers if a[0] == 504)
        assert "request timeout of 0.2 s" in timed_out[2]["error"]
        assert all(h.get("retry-after") == "3" and "queue full" in a["error"] for s, h, a in answers if s == 503)
        # the abandoned synthesis holds the only slot until it ends; then the worker serves again
        statuses = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not statuses or statuses[-1] != 200):
            statuses.append(send(live.port, raw("POST", "/tts", tts("hi"))))
            time.sleep(0.1)
        assert statuses[-1] == 200 and set(statuses) <= {200, 503, 504}, statuses
        assert [p.pid for p in psutil.Process(live.pid).children()] == worker


def test_the_fuzz_command_refuses_bad_limits_in_one_line():
    # its campaign is the one above (bench.serving.fuzz); a full run is the lead's `ttsload fuzz-http`
    done = ttsload("fuzz-http", "--queue", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == "ttsload: error: http limits: queue must be an integer >= 1, got 0"


def test_the_load_generator_records_the_status_of_a_refusal(server):
    with pytest.raises(HttpStatus) as refused:
        post_tts(server.port, "a" * 201, 1)
    assert refused.value.status == 413 and "over the limit of 200" in str(refused.value)
    audio, headers = post_tts(server.port, "hello", 1)
    assert len(audio) > 0 and int(headers["x-worker-pid"]) in server.worker_pids
