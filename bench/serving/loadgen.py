"""The http scenario's load generator: a separate process, so its CPU and memory are not the server's.

Started by the http cell as `python -P -m ttsload.bench.serving.loadgen JOB_FD`, JOB_FD a descriptor holding
JSON (port, one load phase, the texts and the plan's order, the first request index). It drives the
load with the async sender of `ttsload client` (bench.loadgen), so the http cell and a client run time requests
the same way (TTFA, gaps, underruns, the send error), POSTs each request to 127.0.0.1, and prints one JSON line
per finished request as soon as it finishes. Latency is client side, from the request's scheduled arrival to
the last byte of audio. torch is never imported here: `request_seed` and `request_texts` live in modules that
do not pull it in. `post_tts` is the one-shot synchronous request the fuzz test and its figures use.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
from typing import Any

from ttsload.bench.drive import LoadShape, request_texts
from ttsload.bench.loadgen.api import Api
from ttsload.bench.loadgen.schedule import Arrivals
from ttsload.bench.loadgen.sender import run_step
from ttsload.bench.plan import Plan
from ttsload.bench.procs import read_spec

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
    plan = Plan.from_json(job["plan"])
    text = request_texts(job["texts"], plan)
    shape = LoadShape.from_json(job["phase"])
    first = int(job["first_index"])
    # The same arrivals as the in-process loops (bench.cell.drive): C clients, or Poisson gaps drawn from
    # random.Random(seed) with the first request due at once, so both sides see one schedule.
    arrivals = Arrivals("poisson" if shape.rate else "closed", shape.count, rate=shape.rate,
                        concurrency=shape.concurrency, seed=shape.seed)
    # the Flask app's /tts, or an asgi stack's OpenAI /v1/audio/speech with streamed WAV (bench/serving/stacks.py)
    api = Api("ttsload") if plan.stack in (None, "flask") else Api("openai", response_format="wav", stream=True)

    def emit(record: dict[str, Any]) -> None:
        """One JSON line per finished request, as it finishes: the runner reads memory right after each."""
        record = {**record, "index": first + record["index"], "latency_s": record.get("total_s")}
        if not record["ok"]:
            record["error"] = f"{record.get('error_kind')}: {record.get('error')}"
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    run = asyncio.run(run_step(api.endpoint(f"http://127.0.0.1:{job['port']}"), api, arrivals,
                               [text(first + i) for i in range(shape.count)], TIMEOUT_S, emit, digest=True))
    return 0 if len(run.records) == shape.count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
