"""The bounds of every number a command line or a scenario file may give, checked the same way for both.

A number must be finite (TOML and float() both accept inf and nan) and lie within a range sane on any
machine: a deadline of at most a week, at most 256 workers, ... Beyond that a value is a typo or an attack
(a pool of 100000 processes), refused in one line naming the flag or key, before any cell starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_SECONDS = 7 * 24 * 3600.0  # deadlines and timeouts: a week
MAX_INTERVAL_S = 60.0  # memory sampling interval
MIN_INTERVAL_S = 0.001
MAX_REQUESTS = 100_000  # requests per cell or phase, warm-up requests, distinct texts (they travel in a spec)
MAX_TEXT_CHARS = 100_000  # characters of one corpus text, or of one http request's text
MAX_WORKERS = 256  # worker processes of one cell (counts, add_workers), LRU slots
MAX_CONCURRENCY = 4096  # clients in flight
MAX_RATE = 100_000.0  # requests per second (open loop)
MAX_REPEAT = 1000  # fresh-process repetitions per cell
MAX_THREADS = 1024  # torch threads per process
MAX_MEMORY_MB = 1 << 24  # memory limit per cell: 16 TiB
MAX_QUEUE = 1024  # syntheses admitted per http worker (gunicorn threads = queue + 1)
MAX_BODY_BYTES = 64 << 20  # http request body
MAX_SEED = 2**63  # seeds stay 64-bit integers (the results' CSV and JSON readers hold them exactly)


def whole(value: object, minimum: int, maximum: int) -> bool:  # value: untrusted input
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum


def real(value: object, minimum: float, maximum: float, above: bool = False) -> bool:
    """A finite int or float in [minimum, maximum] (or (minimum, maximum] when `above`)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return (value > minimum if above else value >= minimum) and value <= maximum


def integer_arg(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum] (digits only: no '²', no '1e3')."""

    def parse(text: str) -> int:
        stripped = text.strip()
        digits = stripped[1:] if stripped[:1] in "+-" else stripped
        if not (digits.isascii() and digits.isdigit()):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        number = int(stripped)
        if not minimum <= number <= maximum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} and at most {maximum}, got {text}")
        return number

    return parse


def seconds_arg(minimum: float, maximum: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds above `minimum`, at most `maximum`."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
        if not real(number, minimum, maximum, above=True):
            raise argparse.ArgumentTypeError(f"must be a finite number of seconds > {minimum:g} and <= {maximum:g}, "
                                             f"got {text}")
        return number

    return parse


def interval_arg(text: str) -> float:
    """--interval: seconds between memory readings, MIN_INTERVAL_S..MAX_INTERVAL_S."""
    number = seconds_arg(0.0, MAX_INTERVAL_S)(text)
    if number < MIN_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL_S:g} s, got {text}")
    return number


timeout_arg = seconds_arg(0.0, MAX_SECONDS)
requests_arg = integer_arg(1, MAX_REQUESTS)
repeat_arg = integer_arg(1, MAX_REPEAT)
threads_arg = integer_arg(1, MAX_THREADS)
memory_arg = integer_arg(1, MAX_MEMORY_MB)
seed_arg = integer_arg(0, MAX_SEED - 1)
