"""Strategy options: settings that compose with any topology and loader, written after the strategy's name.

    singleton:retry=3            prefork+mmap:arena=2:trim=4

Each option is a `key=value` pair after a colon. The keys are registered here with a one-line help and a
parser, by whichever module gives the option its meaning (allocator, reliability, ...); the harness only
parses, validates and records them (`strategy_options` in the results), so a typo fails before any cell
starts. Options are part of the strategy's name, so `singleton` and `singleton:retry=3` are two cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttsload.strategies.base import UnknownStrategy

SEPARATOR = ":"


@dataclass(frozen=True)
class Option:
    key: str
    help: str
    parse: Callable[[str], Any]  # raises ValueError with a short reason on a bad value


OPTIONS: dict[str, Option] = {}


def register(key: str, help: str, parse: Callable[[str], Any] = str) -> Option:
    """Declare an option key; modules that act on the option call this at import time."""
    option = Option(key, help, parse)
    OPTIONS[key] = option
    return option


def split(name: str) -> tuple[str, str]:
    """'prefork+mmap:arena=2' -> ('prefork+mmap', 'arena=2'); no options -> (name, '')."""
    base, _, rest = name.partition(SEPARATOR)
    return base.strip(), rest.strip()


def parse(name: str, text: str) -> dict[str, Any]:
    """The options of strategy `name` as {key: parsed value}, or UnknownStrategy naming the bad part."""
    _register_builtin()
    found: dict[str, Any] = {}
    for part in (p for p in text.split(SEPARATOR) if p.strip()):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key:
            raise UnknownStrategy(f"strategy '{name}': option '{part}' is not key=value")
        if key not in OPTIONS:
            known = ", ".join(f"{k} ({o.help})" for k, o in sorted(OPTIONS.items())) or "none"
            raise UnknownStrategy(f"strategy '{name}': unknown option '{key}' (options: {known})")
        if key in found:
            raise UnknownStrategy(f"strategy '{name}': option '{key}' given twice")
        try:
            found[key] = OPTIONS[key].parse(value)
        except ValueError as exc:
            raise UnknownStrategy(f"strategy '{name}': option {key}={value!r}: {exc}") from None
    return found


def _register_builtin() -> None:
    """Register the options the strategy modules declare.

    They are declared there as data, not registered on import, so no module imports this one back (a cycle).
    """
    from ttsload.strategies import allocator, idle, reliability, stream_choice

    for key, help, parse in allocator.OPTIONS:  # arena, trim, alloc, onednn_cache
        OPTIONS.setdefault(key, Option(key, help, parse))
    for key, (help, parse) in reliability.OPTIONS.items():  # retry, backoff, fallback, liveness
        OPTIONS.setdefault(key, Option(key, help, parse))
    for key, (help, parse) in {**idle.OPTIONS, **stream_choice.OPTIONS}.items():  # idle_unload, stream
        OPTIONS.setdefault(key, Option(key, help, parse))
