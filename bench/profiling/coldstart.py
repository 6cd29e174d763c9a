"""Where the time goes in cold start: py-spy's speedscope samples grouped by loading phase.

Each sample is given the phase of the outermost strategy function on its stack (the same
functions whose events delimit the timed phases in summary.csv), so "construction" here is
what `construct_s` measures, lazy imports included. Within a phase, frames are ranked by the
samples they appear in; import machinery and torch's call wrappers are skipped because they
sit on every stack and say nothing. py-spy leaves idle threads out by default, so the seconds
are on-CPU sampled time of every Python thread of every process, not wall time.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

# (phase, function name as py-spy prints it without its class, file suffix); outermost match wins.
# The markers are the phase methods of the contracts in strategies/base.py, which every loader and
# topology runs through (a third-party loader's `fill` runs inside `weights_phase`), so a plugin's
# phases are found wherever the plugin lives.
CONTRACTS = "strategies/base.py"
PHASE_MARKERS: tuple[tuple[str, str, str], ...] = (
    ("imports", "runtime_phase", CONTRACTS),
    ("verify", "verify_phase", CONTRACTS),
    ("construction", "construct_phase", CONTRACTS),
    ("weights", "weights_phase", CONTRACTS),
    ("weights", "convert_phase", CONTRACTS),
    ("first synthesis", "serve_request", CONTRACTS),
    ("first synthesis", "stream_request", CONTRACTS),
    ("after first audio", "close", "strategies/topologies.py"),
)
OTHER = "interpreter + harness"
PHASES = ("imports", "verify", "construction", "weights", "first synthesis", OTHER)
AFTER = "after first audio"
# Frames on nearly every stack of their kind that name no work of their own.
_PLUMBING_NAMES = {"_call_impl", "_wrapped_call_impl", "decorate_context", "import_module", "_run_module_as_main",
                   "_run_code", "inner", "wrapper", "__call__"}
_PLUMBING_FILES = ("<frozen importlib", "<frozen runpy", "contextlib.py", "bench/cell/entry.py")
TOP = 3


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def short_file(path: str) -> str:
    """A package-relative path: torch/nn/modules/conv.py, importlib/metadata/__init__.py, cell/entry.py."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if stdlib := re.search(r"/lib/python3\.\d+/(.+)$", path):
        return stdlib.group(1)
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _phase_of(frame: dict[str, Any]) -> str | None:
    for phase, function, suffix in PHASE_MARKERS:
        if _short(frame["name"]) == function and frame["file"].endswith(suffix):
            return phase
    return None


def _plumbing(frame: dict[str, Any]) -> bool:
    file = frame["file"]
    return _short(frame["name"]) in _PLUMBING_NAMES or any(file.startswith(f) or file.endswith(f)
                                                           for f in _PLUMBING_FILES)


def load_samples(path: Path) -> tuple[list[dict[str, Any]], list[list[tuple[list[int], float]]]]:
    """Frames, and per sampled profile (one per thread) its (stack root-first, seconds) in time order."""
    data = json.loads(path.read_text())
    profiles = [list(zip(p["samples"], p["weights"], strict=True))
                for p in data["profiles"] if p.get("type") == "sampled"]
    return data["shared"]["frames"], profiles


def _phases(frames: list[dict[str, Any]], samples: list[tuple[list[int], float]]) -> list[tuple[str, int]]:
    """(phase, depth below its marker) per sample of one thread.

    Cold start ends at the first audio: what a thread does after its synthesis, and the frameless
    samples of interpreter shutdown at its end, are counted apart.
    """
    out = []
    for stack, _ in samples:
        phase, start = OTHER, 0
        for depth, index in enumerate(stack):
            if found := _phase_of(frames[index]):
                phase, start = found, depth + 1
                break
        out.append((phase, start))
    synthesized = [i for i, (phase, _) in enumerate(out) if phase == "first synthesis"]
    end = synthesized[-1] + 1 if synthesized else len(out)
    while not synthesized and end > 0 and not samples[end - 1][0]:
        end -= 1
    return out[:end] + [(AFTER, 0)] * (len(out) - end)


def phase_table(path: Path, top: int = TOP) -> dict[str, Any]:
    """Seconds per phase and the top frames of each, from one py-spy speedscope file."""
    frames, profiles = load_samples(path)
    seconds: Counter[str] = Counter()
    inclusive: dict[str, Counter[tuple[str, str]]] = {}
    depth_of: dict[tuple[str, str], int] = {}
    samples_of: dict[tuple[str, str], set[tuple[int, int]]] = {}  # which samples a frame is on: its call chain
    for number, samples in enumerate(profiles):
        for sample, ((stack, weight), (phase, start)) in enumerate(zip(samples, _phases(frames, samples),
                                                                       strict=True)):
            seconds[phase] += weight
            counter = inclusive.setdefault(phase, Counter())
            seen = set()
            for depth, index in enumerate(stack[start:]):
                frame = frames[index]
                key = (frame["name"], frame["file"])
                if key not in seen and not _plumbing(frame):
                    seen.add(key)
                    counter[key] += weight
                    depth_of[key] = min(depth_of.get(key, depth), depth)
                    samples_of.setdefault(key, set()).add((number, sample))
    cold = sum(seconds[p] for p in PHASES)
    rows = [{"phase": phase, "seconds": round(seconds[phase], 3),
             "share": round(seconds[phase] / cold, 3) if cold else 0.0,
             "top_frames": _top_frames(inclusive.get(phase, Counter()), depth_of, samples_of, seconds[phase], top)}
            for phase in PHASES]
    return {"source": path.name, "sampled_cold_start_s": round(cold, 3),
            "after_first_audio_s": round(seconds[AFTER], 3), "rows": rows,
            "note": "on-CPU sampled seconds summed over every Python thread and process (py-spy, idle excluded)"}


Chains = dict[tuple[str, str], set[tuple[int, int]]]


def _top_frames(counter: Counter[tuple[str, str]], depth_of: dict[tuple[str, str], int], samples_of: Chains,
                total: float, top: int) -> list[dict[str, Any]]:
    """The frames holding most of a phase, one per call chain.

    A frame on (nearly) every stack of the phase only restates it. Frames of one chain are on the
    same samples: among those (98 % of their samples shared) only the deepest is kept. Two chains
    that merely took the same time (torch's import and scipy's, say) are both kept.
    """
    ranked = sorted(counter.items(), key=lambda item: (-item[1], -depth_of[item[0]]))
    chosen: list[tuple[tuple[str, str], float]] = []

    def same_chain(a: tuple[str, str], b: tuple[str, str]) -> bool:
        shared = len(samples_of[a] & samples_of[b])
        return shared >= 0.98 * max(len(samples_of[a]), len(samples_of[b]))

    for key, value in ranked:
        if value >= 0.9 * total or any(same_chain(key, other) for other, _ in chosen):
            continue
        chosen.append((key, value))
        if len(chosen) == top:
            break
    return [{"name": name, "file": short_file(file), "seconds": round(value, 3)} for (name, file), value in chosen]
