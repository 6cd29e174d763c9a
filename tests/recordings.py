"""The real runs that the report, gate and shard tests read, made by one function each.

Each test module's run fixture has two params. `recorded` (the unit tier) copies the folder committed
under tests/data/results/NAME. `live` (integration) calls the same function on a freshly built model.
tests/data/regenerate.py writes the recordings with these functions, so a recording is exactly what
the live fixture makes, with one difference: memory sampled every 2 s instead of every 50 ms, which
keeps the recording small (each sample is a ~300-byte record).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RESULTS, ttsload

RECORDING_OPTIONS = ("--interval", "2")
REPORT_STRATEGIES = ("singleton", "mmap", "quantized")
SHARDED_RUN = ("run", "--strategy", "naive,mmap", "--model", "vits-tiny", "--requests", "1", "--repeat", "2",
               "--no-history")
PLAN = "plan.txt"  # the shards' `--list-cells` output, beside them


def report_run(model: Path, root: Path, scratch: Path, *extra: str) -> None:
    """ROOT/run: three strategies on the tiny model plus a corrupted copy of it (those cells fail)."""
    broken = scratch / "broken-model"
    shutil.copytree(model, broken)
    checkpoint = broken / "model_file.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    done = ttsload("run", "--strategy", ",".join(REPORT_STRATEGIES), "--model", f"vits-tiny,{broken}",
                   "--requests", "2", "--repeat", "2", "--out", str(root / "run"), *extra)
    assert done.returncode == 1, done.stderr[-3000:]  # the broken model's cells fail, the others run


def shard_runs(model: Path, root: Path, scratch: Path, *extra: str) -> None:
    """ROOT/plan.txt (the plan listed), then ROOT/shard0 and ROOT/shard1, its 2 shards run one after the
    other on the tiny model as machine 'box-a'."""
    plan = ttsload(*SHARDED_RUN, "--shard", "0/2", "--list-cells", "--out", str(scratch / "listed"), *extra)
    assert plan.returncode == 0 and not (scratch / "listed").exists(), plan.stderr[-2000:]
    root.mkdir(parents=True, exist_ok=True)
    (root / PLAN).write_text(plan.stdout)
    for index in range(2):
        done = ttsload(*SHARDED_RUN, "--shard", f"{index}/2", "--machine", "box-a", "--out",
                       str(root / f"shard{index}"), *extra)
        assert done.returncode == 0, done.stderr[-2000:]


GATE_RUN = ("run", "--strategy", "singleton", "--model", "vits-tiny", "--requests", "1")
# The planted CPU and memory faults are compared 5 repetitions against 5: a one-sided Mann–Whitney test
# then stays at p <= 0.05 with up to 4 inversions (a neighbour stretching one repetition), where 3 against
# 3 reaches 0.05 only when every repetition is on its side (CI saw p = 0.2 for a +142 % plant).
PLANTED_REPEAT = "5"


def _gate_run(out: Path, history: Path, extra: tuple[str, ...], plant: str | None = None, repeat: str = "3",
              **environ: str) -> None:
    env = {"TTSLOAD_TEST_STRATEGIES": "1", "TTSLOAD_TEST_PLANT": plant, **environ} if plant else {}
    done = ttsload(*GATE_RUN, "--repeat", repeat, "--out", str(out), "--history", str(history), *extra, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def gate_pair(model: Path, root: Path, scratch: Path, *extra: str) -> None:
    """ROOT/same1 (5 repetitions, as a baseline is made) and ROOT/same2 (3): two runs of one config."""
    _gate_run(root / "same1", root / "history.jsonl", extra, repeat=PLANTED_REPEAT)
    _gate_run(root / "same2", root / "history.jsonl", extra)


def gate_runs(model: Path, root: Path, scratch: Path, *extra: str) -> None:
    """The gate pair, a third run of its config, then the same config with each planted fault standing in
    for eager (5 repetitions serve the 5-against-5 plants); ROOT/history.jsonl holds the first five runs."""
    gate_pair(model, root, scratch, *extra)
    history = root / "history.jsonl"
    _gate_run(root / "same3", history, extra)
    _gate_run(root / "slow", history, extra, plant="slow-eager")
    _gate_run(root / "copy", history, extra, plant="copy-eager")
    others = root / "planted-history.jsonl"  # kept apart: the history test counts five runs
    _gate_run(root / "anon", others, extra, plant="anon-eager", repeat=PLANTED_REPEAT)  # +10 % anonymous memory
    _gate_run(root / "cpu", others, extra, plant="cpu-eager", repeat=PLANTED_REPEAT, TTSLOAD_TEST_CPU_PCT="400")


# What is recorded (the planted faults are not: their tests run live only). Smallest first.
RECORDINGS: dict[str, Callable[..., None]] = {"shards": shard_runs, "gate": gate_pair, "report": report_run}
LIVE_ONLY: dict[str, Callable[..., None]] = {"gate-planted": gate_runs}


# A run fixture's params: the recording in the unit tier, a fresh run of the same function in integration.
PARAMS = ["recorded", pytest.param("live", marks=pytest.mark.integration)]


def made(name: str, request: pytest.FixtureRequest, target: Path) -> Path:
    """TARGET holding recording NAME: a copy of the committed one (param `recorded`), else a fresh run."""
    if getattr(request, "param", "live") == "recorded":
        shutil.copytree(RESULTS / name, target)
        return target
    tiny = request.getfixturevalue("tiny")
    scratch = target.with_name(target.name + "-scratch")
    scratch.mkdir(parents=True)
    {**RECORDINGS, **LIVE_ONLY}[name](tiny.checkpoint.parent, target, scratch)
    return target


def environ_for_recording(home: Path) -> None:
    """What tests/conftest.py sets for the live runs, for regenerate.py."""
    os.environ["TTSLOAD_HOME"] = str(home)
    os.environ.setdefault("TTSLOAD_MEMCPY_MIB", "32")
