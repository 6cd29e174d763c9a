"""Machine classes: which committed baseline a run may be compared with in absolute terms.

Timings and the ranking of strategies depend on the CPU (bf16 ran 2x faster than fp32 on an AMD EPYC
with avx512_bf16 and 47 % slower on a Xeon with AMX), so a baseline only judges runs of its own
machine class: the same fingerprint (bench/harness/environment.py). A baseline saved before runs
carried fingerprints gets one derived from its recorded environment, with its ISA flags unknown, and
an unknown field never matches: such a baseline is only used when named explicitly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FIELDS = ("cpu", "cores_logical", "memory_gb", "isa", "python", "torch", "coqui-tts")


def machine_class(print_: dict[str, Any]) -> str:
    """A short stable id of a fingerprint (12 hex digits), for file names and table headers."""
    return hashlib.sha256(json.dumps(print_, sort_keys=True).encode()).hexdigest()[:12]


def describe_class(print_: dict[str, Any]) -> str:
    """One line a person can read: 'AMD EPYC, 2 cores, 23 GB, avx512_bf16, py3.11 torch 2.13.0+cpu'."""
    isa = ",".join(print_.get("isa") or []) or "no avx2"
    return (f"{print_.get('cpu')}, {print_.get('cores_logical')} cores, {print_.get('memory_gb')} GB, {isa}, "
            f"py{print_.get('python')} torch {print_.get('torch')} coqui-tts {print_.get('coqui-tts')}")


def fingerprint_of(environment: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint a run (or baseline) recorded, else what its environment says (None where it says nothing)."""
    if isinstance(recorded := environment.get("fingerprint"), dict):
        return recorded
    packages = environment.get("packages") or {}
    python = environment.get("python")
    memory = environment.get("memory_total_mb")
    return {"cpu": environment.get("cpu"), "cores_logical": environment.get("cores_logical"),
            "memory_gb": round(memory / 1024) if isinstance(memory, (int, float)) else None,
            "isa": None,  # not recorded before fingerprints: unknown, never matches
            "python": ".".join(str(python).split(".")[:2]) if python else None,
            "torch": packages.get("torch"), "coqui-tts": packages.get("coqui-tts")}


def differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fields that differ, as 'field: baseline -> current'; an unknown field (None) always differs."""
    out = []
    for name in FIELDS:
        old, new = baseline.get(name), current.get(name)
        if old is None or new is None or old != new:
            out.append(f"{name}: {old!r} -> {new!r}")
    return out


def describe(print_: dict[str, Any]) -> str:
    """'AMD EPYC ..., 2 cores, ... [class 1a2b3c4d5e6f]': the line the gate prints."""
    return f"{describe_class(print_)} [class {machine_class(print_)}]"


def find_baseline(directory: Path, current: dict[str, Any]) -> tuple[Path | None, list[str]]:
    """The baseline file in `directory` whose fingerprint matches `current` (the newest saved, if several),
    and for each file that did not match, one line saying why."""
    matching, rejected = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rejected.append(f"{path.name}: not readable JSON")
            continue
        if not isinstance(data, dict) or data.get("format") != "ttsload-result-set":
            continue
        differ = differences(fingerprint_of(data.get("environment") or {}), current)
        if differ:
            rejected.append(f"{path.name}: {'; '.join(differ)}")
        else:
            matching.append((str(data.get("saved", "")), path))
    return (max(matching)[1] if matching else None), rejected
