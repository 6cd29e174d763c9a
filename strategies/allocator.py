"""Allocator and runtime controls as strategy options, applied in every process of a cell's tree.

    prefork+mmap:arena=2            MALLOC_ARENA_MAX=2 (glibc: fewer heaps, less retained memory)
    prefork+mmap:trim=4             malloc_trim(0) after every 4th request served by each process
    prefork+mmap:alloc=jemalloc     LD_PRELOAD of Debian's libjemalloc2 instead of glibc malloc
    singleton:onednn_cache=64       ONEDNN_PRIMITIVE_CACHE_CAPACITY=64 (oneDNN's kernels per shape)

All but `trim` are read by the C libraries when a process starts, so they travel as environment
variables: the runner starts the cell process with them (`environment()`), and every worker the
cell spawns or forks inherits them. `trim` travels the same way (TTSLOAD_TRIM_EVERY) and is acted
on by `base.serve_request`, in whichever process served the request.
`in_effect()` says what a process really runs with (the environment, and jemalloc found in its maps),
for the results.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttsload.strategies.base import TRIM_EVERY

JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")  # Debian/Ubuntu package libjemalloc2
JEMALLOC_INSTALL = "apt-get update && apt-get install -y libjemalloc2"
ALLOCATORS = ("glibc", "jemalloc")


def _whole(minimum: int) -> Callable[[str], int]:
    """A parser of whole numbers from `minimum` up (ValueError with a short reason otherwise)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError("not a whole number") from None
        if number < minimum:
            raise ValueError(f"must be {minimum} or more")
        return number

    return parse


def _allocator(value: str) -> str:
    if value not in ALLOCATORS:
        raise ValueError(f"allocators: {', '.join(ALLOCATORS)}")
    if value == "jemalloc" and not jemalloc_path().is_file():
        raise ValueError(f"jemalloc is not installed ({jemalloc_path()} missing); install it: {JEMALLOC_INSTALL}")
    return value


def jemalloc_path() -> Path:
    """Where libjemalloc is looked for (TTSLOAD_JEMALLOC overrides the Debian path)."""
    return Path(os.environ.get("TTSLOAD_JEMALLOC") or JEMALLOC)


# Strategy options (key, help, parse), registered by strategies/options.py.
OPTIONS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("arena", "MALLOC_ARENA_MAX: glibc heaps per process", _whole(1)),
    ("trim", "malloc_trim(0) after every N requests, in every serving process", _whole(1)),
    ("alloc", "allocator: glibc, or jemalloc by LD_PRELOAD (package libjemalloc2)", _allocator),
    ("onednn_cache", "ONEDNN_PRIMITIVE_CACHE_CAPACITY: oneDNN kernels kept per process (0: none)", _whole(0)),
)


def environment(options: dict[str, Any]) -> dict[str, str]:
    """The environment variables a cell process (and so its whole tree) must start with."""
    env: dict[str, str] = {}
    if "arena" in options:
        env["MALLOC_ARENA_MAX"] = str(options["arena"])
    if "trim" in options:
        env[TRIM_EVERY] = str(options["trim"])
    if options.get("alloc") == "jemalloc":
        preload = os.environ.get("LD_PRELOAD", "")
        env["LD_PRELOAD"] = " ".join(p for p in (str(jemalloc_path()), preload) if p)
    if "onednn_cache" in options:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(options["onednn_cache"])
    return env


def process_environment(options: dict[str, Any], base: dict[str, str] | None = None) -> dict[str, str] | None:
    """`base` (os.environ) plus the options' variables (these and `stream=`), or None when the options set none
    (inherit as is)."""
    from ttsload.strategies import stream_choice

    extra = {**environment(options), **stream_choice.environment(options)}
    return {**(os.environ if base is None else base), **extra} if extra else None


def allocator_of(pid: int | str = "self") -> str:
    """The malloc a process runs: jemalloc when its library is mapped, else glibc."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    return "jemalloc" if "libjemalloc" in maps else "glibc"


def in_effect() -> dict[str, Any]:
    """What this process really runs with, for the results (an option the environment lost shows here)."""
    env = os.environ
    return {"allocator": allocator_of(), "malloc_arena_max": env.get("MALLOC_ARENA_MAX"),
            "trim_every": env.get(TRIM_EVERY), "onednn_cache": env.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
