"""The asgi app's routes: GET /health, GET /ready, POST /v1/audio/speech, every refusal JSON {"error": ...}.

The limits are the Flask app's (bench/http_limits.py): a Content-Type other than UTF-8 JSON is 415 before the
body is read; a body over `max_body_bytes` is 413 (from its Content-Length, or once that many bytes came);
a body not complete within `read_timeout_s` is 408; then the checks of bench/serving/speech.py; a full
queue is 503 with Retry-After and no audio within `request_timeout_s` is 504 (bench/serving/streams.py).
A broken serving side (a worker died, memory ran out) is 503, a text the model cannot say 422: never 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request  # at module level: FastAPI resolves the routes' (string) annotations here

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.serving.guard import Rejected, check_content_type
from ttsload.bench.serving.speech import Encoder, parse_speech
from ttsload.bench.serving.streams import Rest, Streams
from ttsload.strategies.base import Audio

log = logging.getLogger("ttsload.asgi")


def add_routes(app: FastAPI, limits: HttpLimits, streams: Streams, state: dict[str, Any],
               config: dict[str, Any]) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    from ttsload.strategies.base import StrategyError

    def refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> Any:
        return JSONResponse({"error": reason}, status_code=status, headers=headers)

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected) -> Any:
        return refuse(exc.status, exc.reason, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:  # 404, 405 (with Allow)
        return refuse(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        return refuse(400, "request is not valid")

    @app.get("/health")
    async def health() -> Any:
        return {"ok": True, "pid": os.getpid()}

    @app.get("/ready")
    async def ready() -> Any:
        body = {"ready": state["server"] is not None, "pid": os.getpid(), "stack": config.get("stack"),
                "requests": streams.counts.to_json()}
        if state["error"]:
            body["error"] = state["error"]
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Any:
        server = state["server"]
        if server is None:
            return refuse(503, "model not loaded", {"Retry-After": str(limits.retry_after_s)})
        content_type = request.headers.get("content-type", "")
        mimetype, _, rest = content_type.partition(";")
        params = dict(p.strip().split("=", 1) for p in rest.split(";") if "=" in p)
        check_content_type(mimetype.strip().lower(), {k.lower(): v.strip('"') for k, v in params.items()},
                           content_type)
        asked = parse_speech(await _body(request, limits), limits)
        try:
            kind, first, rest_chunks = await streams.open(lambda: server.synthesize_stream(asked.text, asked.seed))
        except Rejected:
            raise
        # The bodies stay generic: exception text can carry paths and internals; the detail goes to the log.
        except (StrategyError, MemoryError):
            log.exception("synthesis failed")
            return refuse(503, "the server could not synthesize now (see the server log); retry later",
                          {"Retry-After": str(limits.retry_after_s)})
        except Exception:  # noqa: BLE001 - the model could not synthesize this (valid) input
            log.exception("synthesis failed")
            return refuse(422, "text could not be synthesized by this model (see the server log)")
        if first is None:
            return refuse(422, "the model made no audio for this text")
        encoder = Encoder(asked, first.sample_rate)
        headers = {"X-Sample-Rate": str(encoder.rate), "X-Stream-Kind": kind, "X-Worker-Pid": str(os.getpid())}
        if asked.stream:
            return StreamingResponse(_streamed(encoder, first, rest_chunks), media_type=asked.media_type,
                                     headers=headers)
        body = await _whole(encoder, first, rest_chunks)
        return Response(body, media_type=asked.media_type, headers=headers)


async def _body(request: Request, limits: HttpLimits) -> bytes:
    """The body, refused at 413 past max_body_bytes (declared or received) and 408 past read_timeout_s."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise Rejected(413, f"body of {declared} bytes is over the limit of {limits.max_body_bytes}")
    received = bytearray()

    async def read() -> None:
        async for part in request.stream():
            received.extend(part)
            if len(received) > limits.max_body_bytes:
                raise Rejected(413, f"body is over the limit of {limits.max_body_bytes} bytes")

    try:
        await asyncio.wait_for(read(), limits.read_timeout_s)
    except asyncio.TimeoutError:
        raise Rejected(408, f"body not received within {limits.read_timeout_s:g} s") from None
    return bytes(received)


async def _streamed(encoder: Encoder, first: Audio, rest: Rest) -> AsyncIterator[bytes]:
    """The response body as the chunks come; a client that leaves closes `rest`, which cancels the synthesis."""
    try:
        yield encoder.head() + encoder.chunk(first.wav)
        async for chunk in rest:
            yield encoder.chunk(chunk.wav)
    finally:
        await rest.aclose()


async def _whole(encoder: Encoder, first: Audio, rest: Rest) -> bytes:
    parts = [encoder.chunk(first.wav)]
    try:
        async for chunk in rest:
            parts.append(encoder.chunk(chunk.wav))
    finally:
        await rest.aclose()
    data = b"".join(parts)
    return encoder.head(len(data) // 2) + data

