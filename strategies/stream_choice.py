"""How a streamed request is chunked, as a strategy option:

    singleton:stream=sentence        prefork+mmap:stream=none

Without the option a model streams the way its family does by default: natively where the model streams
itself (XTTS's `inference_stream`), else sentence by sentence. `stream=sentence` makes a natively streaming
model chunk by sentence instead (to compare the two on one model), and `stream=none` sends every request
as one whole clip on any model and stack. Like `trim=`, the choice travels as an environment variable set
when the cell process starts, so every worker that serves a request sees it.
"""

from __future__ import annotations

import os
from typing import Any

from ttsload.strategies.audio import STREAM_KINDS

KEY = "stream"
ENV = "TTSLOAD_STREAM"


def _kind(value: str) -> str:
    if value not in STREAM_KINDS:
        raise ValueError(f"expected one of {', '.join(STREAM_KINDS)}")
    return value


# Declared here, registered by strategies/options.py (key -> (one-line help, parser)), as idle.py does.
OPTIONS: dict[str, tuple[str, Any]] = {
    KEY: ("how streamed requests are chunked: native (the model's own), sentence, or none (the whole clip)", _kind),
}


def environment(options: dict[str, Any]) -> dict[str, str]:
    """The variable a cell process (and so its whole tree) starts with when the option is given."""
    return {ENV: str(options[KEY])} if KEY in options else {}


def chosen() -> str | None:
    """The kind this process was asked for, or None for the family's default (an unknown value is ignored:
    the option was validated when the strategy was parsed)."""
    value = os.environ.get(ENV)
    return value if value in STREAM_KINDS else None
