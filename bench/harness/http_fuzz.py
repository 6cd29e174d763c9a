"""A fuzz campaign against a live http server: hypothesis-generated raw requests over loopback, tallied.

Shared by tests/test_http_fuzz.py (which asserts inside `check`, so hypothesis reports the failing
request) and `ttsload fuzz-http` (which prints the tally). Bounded twice: hypothesis' max_examples
and a wall-time budget past which the remaining examples are drawn but not sent. Server memory (anonymous
PSS, PSS and RSS summed over the gunicorn tree, bench.harness.probes.read_tree) is read after a warm-up
of real syntheses and again after the campaign. Anonymous PSS is the figure to judge a leak by: the
tree's share of file pages (libtorch and the rest) moves whenever another process maps or unmaps the
same libraries, which says nothing about the server.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from ttsload.bench.harness.fuzz_requests import RawRequest, requests
from ttsload.bench.harness.probes import read_tree
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.scenario import corpus

NO_RESPONSE = "no response"
CLIENT_TIMEOUT_S = 60.0
TRACE_EVERY = 100
MEMORY_NAMES = {"pss_anon": "anonymous PSS", "pss": "PSS", "rss": "RSS"}


@dataclass
class Tally:
    """What a campaign saw: statuses (or NO_RESPONSE) by count, and the server's memory around it."""

    sent: int = 0
    drawn: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    memory_before: dict[str, int] = field(default_factory=dict)
    memory_after: dict[str, int] = field(default_factory=dict)
    memory_trace: list[tuple[int, int]] = field(default_factory=list)  # (sent, anonymous PSS) every TRACE_EVERY
    alive_after: bool = False
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return self.statuses.get(500, 0)

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "drawn": self.drawn, "statuses": {str(k): v for k, v in sorted(
                    self.statuses.items(), key=str)}, "500s": self.server_errors,
                "memory_before": self.memory_before, "memory_after": self.memory_after,
                "memory_trace": [{"sent": sent, "pss_anon": pss} for sent, pss in self.memory_trace],
                "alive_after": self.alive_after, "seconds": round(self.seconds, 1)}


def send(port: int, request: RawRequest, timeout_s: float = CLIENT_TIMEOUT_S) -> int | str:
    """Send one raw request on a fresh connection; the response's status, or NO_RESPONSE."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        try:
            connection.sendall(request.data)
            connection.shutdown(socket.SHUT_WR)  # the client is done: a truncated body ends here
        except OSError:  # the server answered (and closed) before the whole request went out
            pass
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    first = received.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) >= 2 and first[0].startswith(b"HTTP/") and first[1].isdigit() else NO_RESPONSE


def synthesize(port: int, text: str, seed: int = 0) -> int:
    """One valid request; its status."""
    body = json.dumps({"text": text, "seed": seed}).encode()
    head = (f"POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    status = send(port, RawRequest(head + body, "valid"))
    return status if isinstance(status, int) else 0


def memory(root: int) -> dict[str, int]:
    total = read_tree(root).total
    return {"pss_anon": total["pss_anon"], "pss": total["pss"], "rss": total["rss"]}


def campaign(port: int, root: int, bodies: int, budget_s: float, limits: HttpLimits | None = None,
             check: Callable[[RawRequest, int | str], None] | None = None, seed: int | None = None,
             warmup: int = 4) -> Tally:
    """Warm up with `warmup` real syntheses, read memory, send up to `bodies` generated requests within
    `budget_s`, read memory again and check the server still synthesizes."""
    tally = Tally()
    longest = min(120, (limits or HttpLimits()).max_text_chars)
    warm = corpus.texts(warmup, 0, min(20, longest), longest)
    for text in warm:  # the same texts as the check afterwards: their buffers are in `before` too
        synthesize(port, text)
    tally.memory_before = memory(root)
    start = time.monotonic()
    deadline = start + budget_s

    @settings(max_examples=bodies, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(requests(limits))
    def one(request: RawRequest) -> None:
        tally.drawn += 1
        if time.monotonic() > deadline:
            return
        status = send(port, request)
        tally.sent += 1
        tally.statuses[status] += 1
        tally.by_kind.setdefault(request.body_kind.split()[1], Counter())[status] += 1
        if tally.sent % TRACE_EVERY == 0:
            tally.memory_trace.append((tally.sent, memory(root)["pss_anon"]))
        if check is not None:
            check(request, status)

    if seed is not None:
        one = hypothesis_seed(seed)(one)
    try:
        one()
    finally:
        tally.seconds = time.monotonic() - start
        tally.alive_after = all(synthesize(port, text) == 200 for text in warm)
        tally.memory_after = memory(root)
    return tally


def describe(tally: Tally, limits: HttpLimits) -> list[str]:
    """The figures, one per line, for a terminal or a closing note."""
    mib = 2**20
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(tally.statuses.items(), key=str))
    before, after = tally.memory_before, tally.memory_after
    step = max(1, len(tally.memory_trace) // 10)
    return [f"limits: {json.dumps(limits.to_json())}",
            f"bodies sent: {tally.sent} (drawn {tally.drawn}) in {tally.seconds:.0f} s",
            f"statuses: {statuses}",
            f"500s: {tally.server_errors}",
            f"server alive and synthesizing after: {'yes' if tally.alive_after else 'NO'}",
            *(f"server memory {name}: {before[key] / mib:.1f} MiB before, {after[key] / mib:.1f} MiB after "
              f"({(after[key] - before[key]) / mib:+.1f} MiB)" for key, name in MEMORY_NAMES.items()),
            "server anonymous PSS along the way (requests sent: MiB): " + ", ".join(
                f"{sent}: {pss / mib:.1f}" for sent, pss in tally.memory_trace[::step] + tally.memory_trace[-1:])]
