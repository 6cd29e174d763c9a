"""What a scenario file may say, and the check that says exactly where it says something else.

Every key has a checker that returns the value or raises ScenarioError naming the file and the
dotted key, so `workers.counts = [0]` fails as `scenarios/x.toml: workers.counts: expected a list of
at least 1 item(s), each an integer from 1 to 256, got [0]`. Numbers are finite and bounded (bench/bounds.py:
a week for any timeout, 256 workers, 100000 requests per phase, ...; the README lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttsload.bench import bounds
from ttsload.bench.errors import UsageError
from ttsload.bench.plan import FAULTS, STACKS

KINDS = ("single", "pool", "switch", "http", "idle")
Check = Callable[[Any], bool]


class ScenarioError(UsageError):
    """A scenario file that cannot be run; the message names the file and the key."""


def _int(minimum: int, maximum: int) -> tuple[Check, str]:
    return (lambda v: bounds.whole(v, minimum, maximum)), f"an integer from {minimum} to {maximum}"


def _number(maximum: float, positive: bool = True) -> tuple[Check, str]:
    """A finite number (TOML's inf and nan are refused) above 0 (or from 0), at most `maximum`."""
    return ((lambda v: bounds.real(v, 0, maximum, above=positive)),
            f"a finite number {'>' if positive else '>='} 0 and <= {maximum:g}")


def _choice(*options: str) -> tuple[Check, str]:
    return (lambda v: v in options), "one of " + ", ".join(repr(o) for o in options)


def _list(item: tuple[Check, str], minimum: int = 1) -> tuple[Check, str]:
    check, what = item
    return ((lambda v: isinstance(v, list) and len(v) >= minimum and all(check(x) for x in v)),
            f"a list of at least {minimum} item(s), each {what}")


def _either(*items: tuple[Check, str]) -> tuple[Check, str]:
    return (lambda v: any(check(v) for check, _ in items)), " or ".join(what for _, what in items)


TEXT = ((lambda v: isinstance(v, str) and v.strip() != ""), "a non-empty string")
SEED = _int(0, bounds.MAX_SEED - 1)
BOOL = ((lambda v: isinstance(v, bool)), "true or false")

TOP: dict[str, tuple[Check, str]] = {
    "summary": TEXT,
    "kind": _choice(*KINDS),
    "strategies": _list(TEXT),
    "models": _list(TEXT),
    "repeat": _int(1, bounds.MAX_REPEAT),
    "timeout_s": _number(bounds.MAX_SECONDS),
}
TABLES: dict[str, dict[str, tuple[Check, str]]] = {
    "workers": {"counts": _list(_int(1, bounds.MAX_WORKERS)),
                "threads": _either(_choice("auto"), _int(1, bounds.MAX_THREADS))},
    "texts": {"distinct": _int(1, bounds.MAX_REQUESTS), "min_chars": _int(1, bounds.MAX_TEXT_CHARS),
              "max_chars": _int(1, bounds.MAX_TEXT_CHARS), "seed": SEED,
              "order": _choice("cycle", "random")},
    "switch": {"lru": _list(_int(1, bounds.MAX_WORKERS)), "pattern": _choice("round-robin", "random"), "seed": SEED},
    "leak": {"warmup": _int(0, bounds.MAX_REQUESTS),
             "threshold_mb_per_1k": _number(bounds.MAX_MEMORY_MB, positive=False),
             "confidence": ((lambda v: isinstance(v, float) and 0 < v < 1), "a number between 0 and 1")},
    "sampler": {"modes": _list(_choice("on", "off"))},
    "http": {"preload": _list(BOOL), "stack": _list(_choice(*STACKS)), "max_text_chars": _int(1, bounds.MAX_TEXT_CHARS),
             "max_body_bytes": _int(1, bounds.MAX_BODY_BYTES), "queue": _int(1, bounds.MAX_QUEUE),
             "request_timeout_s": _number(bounds.MAX_SECONDS), "read_timeout_s": _number(bounds.MAX_SECONDS)},
    "faults": {"drills": _list(_choice(*FAULTS)), "after": _int(0, bounds.MAX_REQUESTS),
               "hide_s": _number(bounds.MAX_SECONDS), "memory_limit_mb": _int(16, bounds.MAX_MEMORY_MB)},
}
PHASES: dict[str, dict[str, tuple[Check, str]]] = {
    "requests": {"count": _int(1, bounds.MAX_REQUESTS),
                 "concurrency": _either(_int(1, bounds.MAX_CONCURRENCY), _choice("workers")),
                 "rate": _number(bounds.MAX_RATE), "seed": SEED, "label": TEXT,
                 "add_workers": _int(1, bounds.MAX_WORKERS), "add_after": _int(0, bounds.MAX_REQUESTS),
                 "trim_every": _int(1, bounds.MAX_REQUESTS)},
    "trim": {},
    "kill_worker": {"worker": _int(0, bounds.MAX_WORKERS)},
    "idle": {},  # wait until the strategy's idle_unload=S has unloaded (bench/cell/idle_kind.py)
}
REQUIRED = ("summary",)


def validate(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check every key of a parsed scenario file; return it unchanged or raise ScenarioError."""

    def fail(key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{path}: {key}: {problem}")

    for key in REQUIRED:
        if key not in data:
            raise fail(key, "missing (say in one line what the scenario measures)")
    for key, value in data.items():
        if key in TOP:
            _check(TOP[key], value, key, fail)
        elif key in TABLES:
            if not isinstance(value, dict):
                raise fail(key, f"expected a table [{key}], got {value!r}")
            _check_table(TABLES[key], value, key, fail)
        elif key == "phase":
            _check_phases(value, fail)
        else:
            raise fail(key, f"unknown key (known: {', '.join([*TOP, *TABLES, 'phase'])})")
    _check_kind(data, fail)
    texts = data.get("texts", {})
    if texts.get("min_chars", 1) > texts.get("max_chars", 10**9):
        raise fail("texts.max_chars", f"{texts['max_chars']} is below texts.min_chars {texts['min_chars']}")
    return data


def _check(rule: tuple[Check, str], value: object, key: str, fail: Callable[[str, str], ScenarioError]) -> None:
    check, what = rule
    if not check(value):
        raise fail(key, f"expected {what}, got {value!r}")


def _check_table(rules: dict[str, tuple[Check, str]], table: dict[str, Any], prefix: str,
                 fail: Callable[[str, str], ScenarioError]) -> None:
    for key, value in table.items():
        if key not in rules:
            known = ", ".join(rules) or "none"
            raise fail(f"{prefix}.{key}", f"unknown key (known: {known})")
        _check(rules[key], value, f"{prefix}.{key}", fail)


def _check_phases(phases: object, fail: Callable[[str, str], ScenarioError]) -> None:
    if not isinstance(phases, list) or not phases:
        raise fail("phase", "expected one or more [[phase]] tables")
    for number, phase in enumerate(phases):
        key = f"phase[{number}]"
        if not isinstance(phase, dict):
            raise fail(key, f"expected a table, got {phase!r}")
        if not isinstance(phase.get("do"), str) or phase["do"] not in PHASES:
            raise fail(f"{key}.do", f"expected one of {', '.join(PHASES)}, got {phase.get('do')!r}")
        _check_table(PHASES[phase["do"]], {k: v for k, v in phase.items() if k != "do"}, key, fail)
        if phase["do"] == "requests":
            if "count" not in phase:
                raise fail(f"{key}.count", "missing: how many requests this phase sends")
            if "rate" in phase and "concurrency" in phase:
                raise fail(f"{key}.rate", "give either rate (open loop) or concurrency (closed loop), not both")
            if phase.get("add_after", 0) >= phase["count"] and "add_workers" in phase:
                raise fail(f"{key}.add_after", f"{phase['add_after']} is not below the phase's count {phase['count']}")


KIND_LIMITS = {  # kind -> (phases it runs, request keys it does not support)
    "pool": (set(PHASES) - {"idle"}, set()),
    "idle": ({"requests", "idle", "trim"}, {"concurrency", "rate", "add_workers", "add_after", "trim_every"}),
    "switch": ({"requests"}, {"concurrency", "rate", "add_workers", "add_after", "trim_every"}),
    "http": ({"requests"}, {"add_workers", "add_after", "trim_every"}),
}


def _check_kind(data: dict[str, Any], fail: Callable[[str, str], ScenarioError]) -> None:
    """Phases and keys the scenario's kind can actually run, said before any cell starts."""
    kind = data.get("kind", "pool")
    if kind == "single":
        if "phase" in data:
            raise fail("phase", "the single kind sends each of [texts] once; it takes no [[phase]] tables")
        return
    phases, unsupported = KIND_LIMITS[kind]
    for number, phase in enumerate(data.get("phase", [])):
        if phase["do"] not in phases:
            raise fail(f"phase[{number}].do", f"'{phase['do']}' is not supported by kind '{kind}' "
                       f"(supported: {', '.join(sorted(phases))})")
        if bad := sorted(unsupported & set(phase)):
            raise fail(f"phase[{number}].{bad[0]}", f"not supported by kind '{kind}'")
