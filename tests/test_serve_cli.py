"""`ttsload serve`: the project's own server stack from the command line, measured by `ttsload client` from
outside, stopped with its whole process tree; a stack that cannot serve the strategy is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.conftest import ttsload


def _records(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


@pytest.mark.integration
def test_serve_answers_the_client_and_stops_its_whole_tree_on_sigterm(tiny, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "ttsload", "serve", "--stack", "uvicorn", "--strategy",
                               "singleton:trim=2:stream=none", "--model", "vits-tiny", "--workers", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        started = json.loads(server.stdout.readline())
        assert started["api"] == "openai" and len(started["worker_pids"]) == 2
        tree = [started["pid"], *started["worker_pids"]]
        assert all(psutil.pid_exists(pid) for pid in tree)
        # the strategy's options reach every worker, as they do a cell's: trim=2 and stream=none
        assert all(psutil.Process(pid).environ().get("TTSLOAD_TRIM_EVERY") == "2" for pid in started["worker_pids"])
        done = ttsload("client", started["url"], "--requests", "3", "--server-pid", str(started["pid"]),
                       "--config", "uvicorn-singleton", "--out", str(tmp_path / "out"))
        assert done.returncode == 0, done.stderr[-2000:]
        summary = _records(tmp_path / "out")[-1]
        assert summary["requests_ok"] == 3 and summary["requests_failed"] == 0 and summary["ttfa_p50_s"] > 0
        assert summary["streaming"] is False  # stream=none: each request's audio came whole
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in tree)
    finally:
        server.kill()
        server.wait()


@pytest.mark.integration
def test_a_stack_that_cannot_serve_the_strategy_is_one_line(tiny):
    done = ttsload("serve", "--stack", "loop-workers", "--strategy", "singleton", "--model", "vits-tiny")
    assert done.returncode == 2 and "loop-workers" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
def test_a_server_that_fails_while_starting_is_one_line(tiny_copy):
    checkpoint = tiny_copy / "model_file.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])  # the workers refuse it: sha256 mismatch
    done = ttsload("serve", "--stack", "uvicorn", "--model", str(tiny_copy), "--workers", "1", timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "server did not start" in done.stderr and "sha256" in done.stderr
