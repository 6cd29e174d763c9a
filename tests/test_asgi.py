"""The asgi stacks on the tiny model: every stack serves the http scenario's cell, the same audio as the
in-process strategy, `/ready` is 503 until the model is loaded, and clients that drop mid-stream cancel their
synthesis without hurting the server."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
from typing import Any

import pytest

from ttsload.bench.cells import Cell, CellOutcome
from ttsload.bench.harness.runner import CellOptions, run_cell
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.plan import Plan
from ttsload.bench.scenario import corpus
from ttsload.bench.serving import stacks
from ttsload.bench.serving.speech import pcm16
from ttsload.strategies.audio import concatenate
from ttsload.strategies.base import request_seed
from ttsload.strategies.registry import resolve

pytestmark = pytest.mark.integration  # every test here builds a model or starts a server

TEXTS = corpus.texts(3)
LONG = ("The first sentence is here. A second one follows it. A third one is longer than the others were. "
        "And a fourth one closes the text.")
STACK_CELLS = [("uvicorn", "singleton", False), ("gunicorn-uvicorn", "mmap", True),
               ("loop-threads", "singleton", False), ("loop-workers", "prefork+mmap", False)]


def stack_plan(stack: str, preload: bool) -> Plan:
    return Plan.from_json({"kind": "http", "workers": 2, "threads": 1, "preload": preload, "stack": stack,
                           "order": "cycle", "order_seed": 0,
                           "phases": [{"do": "requests", "count": 6, "concurrency": 2}]})


@pytest.fixture(scope="module")
def cells(tiny, tmp_path_factory) -> dict[str, CellOutcome]:
    tmp = tmp_path_factory.mktemp("asgi")
    out = {}
    for stack, strategy, preload in STACK_CELLS:
        name = f"asgi@{stack}"
        out[stack] = run_cell(Cell(strategy, tiny, 0, name, plan=stack_plan(stack, preload)),
                              CellOptions(texts=TEXTS, timeout_s=600), tmp / f"{stack}.log", lambda event: None)
    return out


def in_process_digests(tiny) -> dict[str, str]:
    """sha256 of each text's streamed audio as 16-bit PCM, made in this process by the singleton strategy."""
    with resolve("singleton").build(tiny, lambda *a, **k: None, 1) as topology:
        return {text: hashlib.sha256(pcm16(concatenate(topology.synthesize_stream(text, request_seed(text))).wav))
                .hexdigest() for text in TEXTS}


@pytest.mark.parametrize("stack", [s for s, _, _ in STACK_CELLS])
def test_every_stack_serves_every_request_streamed_with_the_in_process_audio(cells, tiny, stack):
    outcome = cells[stack]
    assert outcome.status == "ok", f"{outcome.reason}\n{outcome.log[-3000:]}"
    ready = next(e for e in outcome.events if e["event"] == "ready")
    assert ready["stack"] == stack
    done = sorted((e for e in outcome.events if e["event"] == "request_end"), key=lambda e: e["index"])
    assert [e["index"] for e in done] == list(range(6))
    assert {e["stream_kind"] for e in done} == {"sentence"}
    assert all(e["ttfa_s"] <= e["latency_s"] for e in done)
    if stack == "loop-threads":
        # Two threads synthesize at once on one model, and torch's random generator is one per process: each
        # request's seed is not its own, so a stochastic family's audio differs from run to run (docs/serving.md).
        return
    expected = in_process_digests(tiny)
    assert {e["audio_sha256"] for e in done} <= set(expected.values())
    assert len({e["audio_sha256"] for e in done}) == len(TEXTS)


def post(port: int, body: dict[str, Any], timeout: float = 300) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/v1/audio/speech", body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_long_text_streams_its_first_sentence_before_the_whole_clip_is_done(tiny):
    with stacks.serving("loop-threads", "singleton", tiny, workers=1) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        connection.request("POST", "/v1/audio/speech", headers={"Content-Type": "application/json"},
                           body=json.dumps({"model": "vits", "input": LONG, "voice": "any"}))
        response = connection.getresponse()
        reads = []
        while part := response.read1(1 << 16):
            reads.append(len(part))
        connection.close()
        status, whole_headers, whole = post(server.port, {"model": "vits", "input": LONG, "voice": "any",
                                                          "stream": False})
    assert response.status == 200 and response.getheader("X-Stream-Kind") == "sentence"
    assert len(reads) >= 4  # header + first sentence, then one read per later sentence at least
    assert status == 200 and sum(reads) == len(whole)  # the same bytes, streamed or not (sizes aside)


def test_ready_is_503_until_the_model_is_loaded_and_health_answers_at_once(tiny, monkeypatch):
    monkeypatch.setenv("TTSLOAD_TEST_STRATEGIES", "1")
    monkeypatch.setenv("TTSLOAD_TEST_SLEEP_S", "8")
    from ttsload.bench.serving import server as server_tree

    limits = HttpLimits()
    listener = server_tree.listen_loopback(limits.read_timeout_s)
    port = listener.getsockname()[1]
    status_read, status_write = os.pipe()
    events = os.open(os.devnull, os.O_WRONLY)
    strategy = {"name": "resident+slow-eager", "topology": "resident", "loader": "slow-eager", "options": []}
    config = {"strategy": strategy, "model": tiny.to_json(), "threads": 1, "preload": False,
              "events_fd": events, "status_fd": status_write}
    process = stacks.start("loop-threads", config, 1, limits, listener.fileno())
    listener.close()
    os.close(status_write)
    os.close(events)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                health = get(port, "/health")
                break
            except OSError:
                time.sleep(0.2)
        early_ready = get(port, "/ready")
        early_speech = post(port, {"model": "m", "input": "Hello.", "voice": "v"})
        server_tree.wait_ready(process, status_read, 1, time.monotonic() + 300)
        late_ready = get(port, "/ready")
    finally:
        server_tree.stop(process, graceful=False)
        os.close(status_read)
    assert health[0] == 200
    assert early_ready[0] == 503 and early_ready[1]["ready"] is False
    assert early_speech[0] == 503 and early_speech[1]["retry-after"] == str(limits.retry_after_s)
    assert late_ready[0] == 200 and late_ready[1]["ready"] is True


def tree_pss_mb(pid: int) -> float:
    """The server tree's anonymous PSS: what a cancelled synthesis could leave behind. Its share of file pages
    moves whenever another process (a parallel test's) maps the same libraries."""
    from ttsload.bench.harness.probes import read_tree

    return read_tree(pid).total["pss_anon"] / 2**20


def drop_after_first_bytes(port: int) -> int:
    """A client that sends a long text, reads the start of the audio, and goes away; returns the status."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=300)
    body = json.dumps({"model": "vits", "input": LONG, "voice": "any"}).encode()
    sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = sock.recv(4096)
    sock.close()
    return int(head.split(b" ", 2)[1])


def test_clients_that_drop_mid_stream_cancel_their_synthesis_and_the_server_stays_whole(tiny):
    limits = HttpLimits(queue=2)
    with stacks.serving("loop-workers", "prefork+mmap:trim=1", tiny, workers=2, limits=limits) as server:
        for _ in range(2):  # warm both workers
            assert post(server.port, {"model": "vits", "input": LONG, "voice": "any"})[0] == 200
        before = tree_pss_mb(server.pid)
        statuses = [drop_after_first_bytes(server.port) for _ in range(8)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and get(server.port, "/ready")[1]["requests"]["running"]:
            time.sleep(0.2)
        counts = get(server.port, "/ready")[1]["requests"]
        after = tree_pss_mb(server.pid)
        status, _, audio = post(server.port, {"model": "vits", "input": LONG, "voice": "any"})
        alive = server.process.poll() is None
    assert set(statuses) <= {200, 503} and 200 in statuses  # never a 500
    assert counts["cancelled"] >= 1 and counts["running"] == 0 and counts["failed"] == 0
    assert status == 200 and len(audio) > 44 and alive
    assert after <= before * 1.1 + 20, f"tree anonymous PSS {before:.0f} MB before the drops, {after:.0f} MB after"
