"""The http scenario's load generator: a separate process, so its CPU and memory are not the server's.

Started by the http cell as `python -P -m ttsload.bench.serving.loadgen JOB_FD`, JOB_FD a descriptor holding
JSON (port, one load phase, the texts and the plan's order, the first request index). It drives the
load with `drive.run`, the same closed/open loops the in-process scenarios use, POSTs each request to 127.0.0.1 with
http.client, and prints one JSON line per finished request as soon as it finishes. Latency is
client side, from the request's scheduled arrival to the last byte of audio. torch is never
imported here: `request_seed` and `request_texts` live in modules that do not pull it in.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import sys
import threading
import time
from typing import Any

from ttsload.bench.cell.drive import LoadShape, run
from ttsload.bench.cell.kinds import request_texts
from ttsload.bench.plan import Plan
from ttsload.bench.procs import read_spec
from ttsload.strategies.base import request_seed

TIMEOUT_S = 900.0


class HttpStatus(RuntimeError):
    """A response other than 200 (the app's refusals: 4xx, 503 when a worker's queue is full, 504 past its
    request timeout); `status` goes into the request's failure record."""

    def __init__(self, status: int, body: bytes):
        super().__init__(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        self.status = status


def post_tts(port: int, text: str, seed: int) -> tuple[bytes, dict[str, str]]:
    """One request on a fresh loopback connection; raises on anything but 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        body = json.dumps({"text": text, "seed": seed})
        connection.request("POST", "/tts", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise HttpStatus(response.status, data)
        return data, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    job = read_spec(int(argv[1]))
    text = request_texts(job["texts"], Plan.from_json(job["plan"]))
    shape = LoadShape.from_json(job["phase"])
    lock = threading.Lock()

    def emit(record: dict[str, Any]) -> None:
        with lock:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()

    def call(index: int, arrival: float) -> dict[str, Any]:
        request_text = text(index)
        record: dict[str, Any] = {"index": index, "chars": len(request_text)}
        try:
            data, headers = post_tts(job["port"], request_text, request_seed(request_text))
            latency = time.monotonic() - arrival
            rate = int(headers["x-sample-rate"])
            record.update(ok=True, latency_s=latency, audio_s=len(data) / 4 / rate,
                          audio_sha256=hashlib.sha256(data).hexdigest(), worker_pid=int(headers["x-worker-pid"]))
        except Exception as exc:  # noqa: BLE001 - a failed request is that request's record
            record.update(ok=False, error=f"{type(exc).__name__}: {exc}", latency_s=time.monotonic() - arrival,
                          status=getattr(exc, "status", None))
        emit(record)  # as it finishes, so the runner reads memory right after each request
        return record

    records = run(shape, int(job["first_index"]), call)
    return 0 if len(records) == shape.count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
