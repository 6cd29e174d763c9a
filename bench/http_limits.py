"""The http app's stated limits: what it refuses, and how long it lets a request wait.

One frozen record, set in a scenario's [http] table (`max_text_chars`, `max_body_bytes`, `queue`,
`request_timeout_s`, `read_timeout_s`), carried in the cell's Plan, handed to every gunicorn worker and recorded in the
cell's `ready` event, so a result always says which limits its server ran under. No Flask or torch
here: the plan and the load generator import it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class HttpLimits:
    """Defaults sized so the shipped http scenario (texts of at most 120 characters, at most 4 requests in
    flight over 2 workers) never meets them, while a flood or a hostile client does."""

    max_text_chars: int = 1000  # longer text: 413 (characters, i.e. code points)
    max_body_bytes: int = 64 * 1024  # larger body: 413 from the Content-Length alone, before reading it
    queue: int = 4  # syntheses admitted per worker (running + waiting); one more: 503 with Retry-After
    request_timeout_s: float = 300.0  # queue wait + synthesis; over it: 504, the slot freed when it ends
    retry_after_s: int = 1  # the Retry-After a 503 carries
    read_timeout_s: float = 30.0  # a client silent this long while its request is read (or response sent): cut

    def __post_init__(self) -> None:
        for name in ("max_text_chars", "max_body_bytes", "queue", "retry_after_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"http limits: {name} must be an integer >= 1, got {value!r}")
        for name in ("request_timeout_s", "read_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
                raise ValueError(f"http limits: {name} must be a finite number > 0, got {value!r}")

    @property
    def threads(self) -> int:
        """gunicorn threads per worker: one per admitted request, plus one that answers 4xx/503 at once."""
        return self.queue + 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> HttpLimits:
        """From a plan or a scenario's [http] table (other keys of that table, like preload, are not limits)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})
