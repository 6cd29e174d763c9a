"""What the http app lets in: a checked POST /tts body, and a bounded queue of syntheses per worker.

Every refusal is a `Rejected` with its status and a one-line reason, so client input never reaches
the model unchecked and never becomes a 500:
- a Content-Type other than application/json (UTF-8): 415, before the body is read;
- a body that is not UTF-8 JSON, not an object, has unknown keys, or a missing or ill-typed `text`
  (non-empty string, valid Unicode) or `seed` (integer, 0 <= seed < 2**32): 400;
- a text over `max_text_chars`: 413 (a body over `max_body_bytes` is refused by Flask's
  MAX_CONTENT_LENGTH from its Content-Length alone, also 413).

`Admission` is the per-worker queue: at most `queue` syntheses admitted (running or waiting their turn
on the worker's one synthesis thread); one more gets 503 with Retry-After. A request that waits longer
than `request_timeout_s` gets 504; its synthesis cannot be interrupted, so its slot stays taken until
the synthesis really ends (a timed-out request still queued is cancelled and frees its slot at once).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ttsload.bench.http_limits import HttpLimits

FIELDS = ("text", "seed")
SEED_LIMIT = 2**32  # the seeds request_seed gives (crc32) and every family's manual_seed takes


class Rejected(Exception):
    """Client input the app refuses: the HTTP status and a one-line reason for the JSON body."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def check_content_type(mimetype: str, params: dict[str, str], raw_header: str | None) -> None:
    """415 unless the body is declared as UTF-8 JSON; checked before the body is read."""
    charset = params.get("charset", "utf-8").lower()
    if mimetype != "application/json" or charset not in ("utf-8", "utf8"):
        raise Rejected(415, f"Content-Type must be application/json (UTF-8), got {short(raw_header or '')!r}")


def json_object(raw: bytes, fields: tuple[str, ...], wanted: str) -> dict[str, Any]:
    """A body that must be a UTF-8 JSON object with only `fields` (`wanted` names the required ones), or
    Rejected(400) naming what is wrong with it."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected(400, f"body is not UTF-8 JSON: {short(str(exc) or type(exc).__name__)}") from None
    if not isinstance(body, dict):
        raise Rejected(400, f"body must be a JSON object with {wanted}, got {type(body).__name__}")
    if unknown := sorted(set(body) - set(fields)):
        raise Rejected(400, f"unknown field(s) {short(', '.join(unknown))} (known: {', '.join(fields)})")
    return body


def parse_tts(raw: bytes, limits: HttpLimits) -> tuple[str, int]:
    """(text, seed) from a POST /tts body, or Rejected naming what is wrong with it."""
    body = json_object(raw, FIELDS, " and ".join(FIELDS))
    for name in FIELDS:
        if name not in body:
            raise Rejected(400, f"missing field {name!r}")
    text, seed = body["text"], body["seed"]
    if not isinstance(text, str):
        raise Rejected(400, f"text must be a string, got {type(text).__name__}")
    if len(text) > limits.max_text_chars:
        raise Rejected(413, f"text is {len(text)} characters, over the limit of {limits.max_text_chars}")
    if not text.strip():
        raise Rejected(400, "text is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(400, "text is not valid Unicode (a lone surrogate)") from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise Rejected(400, f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= seed < SEED_LIMIT:
        raise Rejected(400, f"seed must be in [0, 2**32), got {short(str(seed))}")
    return text, seed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def short(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters for a one-line reason."""
    return text if len(text) <= limit else text[:limit] + "..."


class Admission:
    """The per-worker bounded queue in front of the worker's single synthesis thread."""

    def __init__(self, limits: HttpLimits):
        self.limits = limits
        self.slots = threading.BoundedSemaphore(limits.queue)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def _executor(self) -> ThreadPoolExecutor:
        """Made in the serving process itself: a pool made before gunicorn's fork would have no thread."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool, self._pid = ThreadPoolExecutor(1, thread_name_prefix="synthesis"), os.getpid()
            return self._pool

    def run(self, synthesize: Callable[..., Any], *args: Any) -> Any:
        """synthesize(*args) in turn, or Rejected: 503 when the queue is full, 504 past the timeout."""
        if not self.slots.acquire(blocking=False):
            raise Rejected(503, f"queue full: {self.limits.queue} requests already admitted by this worker",
                           {"Retry-After": str(self.limits.retry_after_s)})
        try:
            future: Future = self._executor().submit(synthesize, *args)
        except BaseException:
            self.slots.release()
            raise
        future.add_done_callback(lambda _: self.slots.release())
        try:
            return future.result(timeout=self.limits.request_timeout_s)
        except FutureTimeout:
            future.cancel()  # frees the slot now if it never started; a running synthesis keeps it
            raise Rejected(504, f"no audio within the server's request timeout of {self.limits.request_timeout_s:g} s",
                           {"Retry-After": str(self.limits.retry_after_s)}) from None
