"""Hostile command lines, scenario files and output folders (issue #28): each is refused in one line, exit 2,
with no traceback and nothing written; cells start whatever their spec's size and die with the harness."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import cli, ttsload
from ttsload.bench import atomic
from ttsload.bench.atomic import FolderLock

CASES = Path(__file__).parent / "data" / "hostile-inputs" / "cli"


def tree(*folders: Path) -> dict[str, float]:
    """Every path under the folders with its mtime: what a command wrote shows up as a difference."""
    return {str(p): p.stat().st_mtime for folder in folders for p in folder.rglob("*")}


def refused(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert fragment in lines[0], lines[0]


SCENARIOS = [
    ("timeout-inf.toml", "timeout_s: expected a finite number > 0"),
    ("timeout-nan.toml", "timeout_s: expected a finite number > 0"),
    ("workers-100000.toml", "workers.counts: expected a list of at least 1 item(s), each an integer from 1 to 256"),
    ("phase-do-empty-list.toml", "phase[0].do: expected one of requests, trim, kill_worker, idle, got []"),
    ("phase-rate-inf.toml", "phase[0].rate: expected a finite number"),
    ("leak-threshold-nan.toml", "leak.threshold_mb_per_1k: expected a finite number >= 0"),
    ("count-huge.toml", "phase[0].count: expected an integer from 1 to 100000"),
    ("http-read-timeout-inf.toml", "http.read_timeout_s: expected a finite number > 0"),
    ("folder-as-scenario.toml", "is a folder, not a scenario file"),
]


@pytest.mark.parametrize("name, fragment", SCENARIOS)
def test_a_hostile_scenario_is_refused_in_one_line_and_writes_nothing(ttsload_home, tmp_path, name, fragment):
    before = tree(tmp_path, ttsload_home)
    done = cli("run", "--scenario", str(CASES / name), "--model", "vits-tiny", "--strategy", "singleton",
                   "--out", str(tmp_path / "out"), "--no-history")
    refused(done, fragment)
    assert tree(tmp_path, ttsload_home) == before


FLAGS = [
    (["--timeout", "-5"], "argument --timeout: must be a finite number of seconds > 0"),
    (["--timeout", "nan"], "argument --timeout: must be a finite number"),
    (["--timeout", "inf"], "argument --timeout: must be a finite number"),
    (["--interval", "nan"], "argument --interval: must be a finite number"),
    (["--interval", "0"], "argument --interval: must be a finite number"),
    (["--requests", "²"], "argument --requests: expected a whole number, got '²'"),
    (["--requests", "1000001"], "argument --requests: must be at least 1 and at most 100000"),
    (["--repeat", "100000"], "argument --repeat: must be at least 1 and at most 1000"),
    (["--threads", "nan"], "argument --threads: expected a whole number"),
    (["--corpus-seed", "1e3"], "argument --corpus-seed: expected a whole number"),
    (["--memory-limit", str(10**20)], "argument --memory-limit: must be at least 1 and at most"),
    (["--shard", "²/3"], "--shard ²/3: expected I/N with whole numbers"),
    (["--shard", "0/99999999"], "at most 10000 shards"),
]


@pytest.mark.parametrize("args, fragment", FLAGS)
def test_a_hostile_flag_is_refused_in_one_line_and_writes_nothing(ttsload_home, tmp_path, args, fragment):
    before = tree(tmp_path, ttsload_home)
    done = cli("run", "--model", "vits-tiny", "--strategy", "singleton", *args, "--out", str(tmp_path / "out"),
                   "--no-history")
    refused(done, fragment)
    assert tree(tmp_path, ttsload_home) == before


@pytest.mark.parametrize("flag, target, fragment", [
    ("--out", "a-file", "--out {}: is a file, not a folder"),
    ("--out", "a-file/sub", "--out {}: cannot create or open the folder (Not a directory)"),
    ("--resume", "a-file", "--resume {}: is a file, not a folder"),
    ("--resume", "missing", "--resume {}: no ttsload run there"),
])
@pytest.mark.integration
def test_an_output_folder_that_is_a_file_is_one_line(tiny, ttsload_home, tmp_path, flag, target, fragment):
    (tmp_path / "a-file").write_text("not a folder\n")
    before = tree(tmp_path, ttsload_home)
    done = ttsload("run", "--model", "vits-tiny", "--strategy", "singleton", "--requests", "1", "--repeat", "1",
                   flag, str(tmp_path / target), "--no-history")
    refused(done, fragment.format(tmp_path / target))
    assert tree(tmp_path, ttsload_home) == before


@pytest.mark.integration
def test_a_second_run_on_a_locked_folder_stops_in_one_line(tiny, ttsload_home, tmp_path):
    out = tmp_path / "out"
    lock = FolderLock(out)  # what a first run holds for its whole life
    try:
        before = tree(tmp_path, ttsload_home)
        done = ttsload("run", "--model", "vits-tiny", "--strategy", "singleton", "--requests", "1", "--repeat", "1",
                       "--out", str(out), "--no-history")
        refused(done, f"--out {out}: another ttsload run (pid {os.getpid()}) is writing there")
        assert tree(tmp_path, ttsload_home) == before
    finally:
        lock.release()
    assert FolderLock(out)  # free again once the holder lets go (the kernel frees it when a run dies, too)


@pytest.mark.integration
@pytest.mark.parametrize("scenario", ["spec-over-argv-limit.toml", "http-spec-over-argv-limit.toml"])
def test_a_cell_whose_spec_is_over_the_argv_limit_runs(tiny, tmp_path, scenario):
    """2000 texts (~230 KB of spec, and of the http load generator's job): the exec failed with E2BIG and the
    run said 'cannot write results'."""
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", str(CASES / scenario), "--model", "vits-tiny",
                   "--strategy", "singleton", "--repeat", "1", "--out", str(out), "--no-history",
                   env={"GUNICORN_CMD_ARGS": "--max-requests 1"})
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(json.dumps(records[0]["options"]["texts"])) > 128 * 1024
    assert "cannot write results" not in done.stderr
    if scenario.startswith("http"):  # the server-tuning variable is kept from gunicorn, and the result says so
        (ready,) = [r for r in records if r.get("event") == "ready"]
        assert ready["server_env_removed"] == ["GUNICORN_CMD_ARGS"]


@pytest.mark.integration
def test_a_cell_that_cannot_start_is_a_failed_cell_saying_so(tiny, tmp_path):
    from ttsload.bench.harness.runner import CellOptions, run_cell
    from ttsload.bench.scenario import loading as scenarios

    (cell,) = scenarios.load("single").cells(["singleton"], [tiny], 1)
    outcome = run_cell(cell, CellOptions(["hello"], command_prefix=[str(tmp_path / "no-such-profiler")], limits=False),
                       tmp_path / "logs" / "cell.log")
    assert outcome.status == "failed"
    assert outcome.reason.startswith("cell process could not start: No such file or directory"), outcome.reason


# --- atomic writes -------------------------------------------------------------------------------------------

def test_replacing_leaves_the_old_file_when_the_writer_fails_and_uses_unique_temp_names(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.replacing(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
    with atomic.replacing(target) as first, atomic.replacing(target) as second:
        assert first.name != second.name  # two writers never share one temp file
        first.write("a\n")
        second.write("b\n")
    assert target.read_text() == "a\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]  # last out


def test_a_torn_history_line_breaks_neither_the_next_append_nor_the_one_after(tmp_path):
    """history.append goes through atomic.append_line: a killed writer's tail is cut, whole lines are kept."""
    store = tmp_path / "history.jsonl"
    store.write_text('{"date": "2026-01-01T00:00:00", "cells": {"naive|')  # a first write killed mid-line
    atomic.append_line(store, '{"date": "2026-01-02"}')
    assert store.read_text() == '{"date": "2026-01-02"}\n'
    with open(store, "a") as handle:
        handle.write('{"date": "2026-01-03T')  # torn again, now after a whole line
    atomic.append_line(store, "{}")
    assert store.read_text() == '{"date": "2026-01-02"}\n{}\n'


def test_a_killed_manifest_write_leaves_no_manifest_and_is_not_hashed_into_the_next(tmp_path):
    from ttsload.bench.models import MANIFEST, write_manifest

    (tmp_path / "model.pth").write_bytes(b"weights")
    (tmp_path / f".{MANIFEST}.x1y2.tmp").write_text('{"name": "trunc')  # left by a killed writer
    write_manifest(tmp_path, "m", {})
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert set(manifest["files"]) == {"model.pth"}


# --- parent death --------------------------------------------------------------------------------------------

def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _survivors(processes: list[psutil.Process], within_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + within_s
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    return alive


def _survivors_of_killed_owner(owner: subprocess.Popen, server: list[psutil.Process]) -> list[psutil.Process]:
    """SIGKILL the process that started a server; what of the server is still running 30 s later."""
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    return _survivors(server, within_s=30)


@pytest.mark.integration
def test_killing_the_owner_of_an_asgi_server_ends_its_whole_tree(tiny):
    """`ttsload serve --stack uvicorn --workers 2` killed: uvicorn's supervisor, which never imports the app, and
    its workers go with it."""
    owner = subprocess.Popen([sys.executable, "-P", "-m", "ttsload", "serve", "--stack", "uvicorn", "--strategy",
                              "singleton", "--model", "vits-tiny", "--workers", "2"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    server: list[psutil.Process] = []
    try:
        started = json.loads(owner.stdout.readline())
        server = [psutil.Process(started["pid"]), *_descendants(started["pid"])]
        assert len(server) >= 3  # the supervisor and its two workers
        assert _survivors_of_killed_owner(owner, server) == []
    finally:
        if owner.poll() is None:
            owner.kill()
        for process in server:  # a failed check leaves no server behind
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.mark.integration
def test_killing_the_harness_ends_the_cell_and_its_gunicorn_tree(tiny, tmp_path):
    harness = subprocess.Popen([sys.executable, "-P", "-m", "ttsload", "run",
                                "--scenario", str(CASES / "http-long.toml"),
                                "--model", "vits-tiny", "--strategy", "singleton", "--repeat", "1",
                                "--out", str(tmp_path / "out"), "--no-history"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        tree_now: list[psutil.Process] = []
        while time.monotonic() < deadline:  # cell, gunicorn master, its worker, and the load generator
            tree_now = _descendants(harness.pid)
            lines = [" ".join(p.cmdline()) for p in tree_now if p.is_running()]
            if sum("gunicorn" in line for line in lines) >= 2 and any("loadgen" in line for line in lines):
                break
            assert harness.poll() is None, "the run ended before its server was up"
            time.sleep(0.5)
        else:
            pytest.fail("the http cell never had its server and load generator up")
        harness.send_signal(signal.SIGKILL)
        harness.wait()
        assert _survivors(tree_now, within_s=30) == []
    finally:
        if harness.poll() is None:
            harness.kill()


@pytest.mark.integration
def test_killing_the_owner_of_a_standalone_server_ends_the_server(tiny, tmp_path):
    """`serving()` outside any cell (fuzz-http, the tests): gunicorn's master and workers die with their parent."""
    owner = subprocess.Popen([sys.executable, "-P", "-c", (
        "import sys, time\n"
        "from ttsload.bench.models import build\n"
        "from ttsload.bench.serving.server import serving\n"
        "with serving('singleton', build('vits-tiny')) as live:\n"
        "    print(live.pid, flush=True)\n"
        "    time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        master = int(owner.stdout.readline())
        server = [psutil.Process(master), *_descendants(master)]
        assert len(server) >= 2  # the master and its worker
        assert _survivors_of_killed_owner(owner, server) == []
    finally:
        if owner.poll() is None:
            owner.kill()
