"""`idle_unload=S`: a resident model is dropped, or a worker ended, after S idle seconds; the next request reloads."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.harness.probes import read_tree
from ttsload.strategies.base import malloc_trim, request_seed
from ttsload.strategies.idle import IdleTimer
from ttsload.strategies.registry import UnknownStrategy, resolve

WAIT_S = 120.0  # generous bound on a loaded machine; the tests assert order and direction, never time


@pytest.mark.parametrize("name, reason", [
    ("singleton:idle_unload=0", "idle_unload='0': expected a number of seconds > 0"),
    ("singleton:idle_unload=soon", "idle_unload='soon'"),
    ("naive:idle_unload=5", "keeps no model to unload"),
    ("prefork+mmap:idle_unload=5", "keeps no model to unload"),
])
def test_bad_idle_unload_is_one_line(name, reason):
    with pytest.raises(UnknownStrategy, match=reason) as caught:
        resolve(name)
    assert "\n" not in str(caught.value)


def test_resident_and_worker_accept_idle_unload():
    assert resolve("singleton:idle_unload=2").option_map == {"idle_unload": 2.0}
    assert resolve("worker+mmap:idle_unload=0.5").option_map == {"idle_unload": 0.5}


def test_kinds_that_run_their_own_workers_skip_idle_unload_saying_why():
    from ttsload.bench.scenario import loading

    assert "not in a pool kind" in loading.load("workers").skipped(["singleton:idle_unload=5"])[0]
    assert loading.load("idle").skipped(["singleton:idle_unload=5", "subprocess-worker:idle_unload=5"]) == []


def test_idle_timer_fires_once_then_rearms_on_a_request():
    fired = threading.Semaphore(0)
    calls: list[float] = []

    def on_idle(idle_s: float) -> None:
        calls.append(idle_s)
        fired.release()

    timer = IdleTimer(0.05, on_idle)
    try:
        assert fired.acquire(timeout=WAIT_S)
        assert len(calls) == 1  # disarmed: no second call until a request comes
        with timer.busy():
            pass
        assert fired.acquire(timeout=WAIT_S)
        assert len(calls) == 2 and all(s >= 0.05 for s in calls)
    finally:
        timer.stop()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.unloaded = threading.Event()

    def __call__(self, event, t=None, **fields):
        self.events.append((str(event), fields))
        if str(event) == "idle_unload":
            self.unloaded.set()


def _tree_anonymous() -> int:
    """The tree's anonymous memory, trimmed: what an unload gives back. Not PSS, whose share of file pages
    moves whenever another process (a parallel test's) maps the same libraries."""
    malloc_trim()
    return read_tree(os.getpid()).total["pss_anon"]


@pytest.mark.integration
@pytest.mark.parametrize("strategy, how", [("singleton:idle_unload=1", "in_process"),
                                           ("subprocess-worker:idle_unload=1", "worker_exit")])
def test_idle_unload_frees_memory_and_the_next_request_reloads(tiny, strategy, how):
    hook = Recorder()
    with resolve(strategy).build(tiny, hook) as topology:
        for text in ("Hello there.", "A second request."):
            topology.synthesize(text, request_seed(text))
        before = _tree_anonymous()
        assert hook.unloaded.wait(WAIT_S)
        after = _tree_anonymous()
        audio = topology.synthesize("After the pause.", 1)
    names = [e for e, _ in hook.events if e in ("weights_done", "idle_unload", "model_reloaded")]
    assert names == ["weights_done", "idle_unload", "weights_done", "model_reloaded"]
    assert {f["how"] for e, f in hook.events if e in ("idle_unload", "model_reloaded")} == {how}
    assert after < before
    assert len(audio.wav) > 0


@pytest.mark.integration
def test_idle_scenario_records_memory_either_side_of_the_unload_and_the_reload(tiny, tmp_path: Path):
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", "idle", "--strategy", "singleton:idle_unload=1,subprocess-worker:idle_unload=1",
                   "--model", "vits-tiny", "--repeat", "1", "--requests", "2", "--out", str(out), "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "summary.csv", newline="") as handle:
        found = {row["strategy"].split(":")[0]: row for row in csv.DictReader(handle)}
    for strategy in ("singleton", "subprocess-worker"):
        row = found[strategy]
        assert row["status"] == "ok", row["reason"]
        assert float(row["idle_pss_after_mb"]) < float(row["idle_pss_before_mb"])
        assert float(row["reload_s"]) > 0 and float(row["reload_request_s"]) > 0
    worker, resident = found["subprocess-worker"], found["singleton"]
    assert float(worker["idle_returned_mb"]) > float(resident["idle_returned_mb"])  # the process's whole tree went
