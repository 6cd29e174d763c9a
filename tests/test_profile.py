"""Profiling passes on the tiny model: memray and py-spy run real cells, apart from timed ones."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.conftest import ttsload
from ttsload.bench.cells import file_safe
from ttsload.bench.profiling import coldstart
from ttsload.bench.profiling import memray_pass as profile_memray
from ttsload.bench.profiling import pyspy_pass as profile_pyspy
from ttsload.bench.results import load_records
from ttsload.cli import main as cli


def frame_mentions(speedscope: Path, text: str) -> bool:
    """Whether any sampled frame's name or file mentions `text`."""
    frames, profiles = coldstart.load_samples(speedscope)
    used = {i for samples in profiles for stack, _ in samples for i in stack}
    return any(text in frames[i]["name"] or text in frames[i]["file"] for i in used)


def only_profile_records(out: Path) -> list[dict]:
    assert not load_records(out, "cell") and not (out / "summary.csv").exists(), "a profiled cell was timed"
    return load_records(out, "profile")


@pytest.mark.integration
def test_memray_pass_captures_a_positive_peak_with_native_stacks(tiny, tmp_path):
    out = tmp_path / "memray"
    done = ttsload("profile", "--tool", "memray", "--strategy", "mmap", "--model", "vits-tiny", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    [record] = only_profile_records(out)
    assert record["status"] == "ok" and record["cell"] == "mmap|vits-tiny|single|0" and record["pass"] == "profile"
    for path in record["files"].values():
        assert (out / path).is_file() and (out / path).stat().st_size > 0, path
    stats = profile_memray.read_stats(out / record["files"]["stats"])  # parses memray's own JSON again
    assert stats["peak_bytes"] > 0 and stats["allocations"] > 0 and stats["native_traces"] is True
    assert stats.items() <= record["stats"].items()
    assert record["stats"]["peak_at_s"] > 0
    # at the peak, the mapped checkpoint is live: memray counts the mapping, resident or not
    assert any("fill (coqui/loaders.py" in live["stack"] for live in record["stats"]["live_at_peak"])
    assert any("mmap'd file at its full length" in note for note in record["notes"])
    assert "memray peak heap" in done.stderr and str(out / record["files"]["flamegraph"]) in done.stderr


@pytest.mark.integration
@pytest.mark.alone  # py-spy samples on-CPU time: a busy neighbour thins the samples of a 0.5 s construction
def test_pyspy_pass_follows_the_worker_into_model_construction(ttsload_home, tmp_path):
    # the default `vits`: its construction takes ~0.5 s, dozens of samples; vits-tiny's ~40 ms is
    # too short to be sampled reliably (seen here: missed at 100 Hz, and once in three at 1000 Hz)
    out = tmp_path / "pyspy"
    done = ttsload("profile", "--tool", "py-spy", "--strategy", "subprocess-worker", "--model", "vits",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    [record] = only_profile_records(out)
    speedscope, svg = out / record["files"]["speedscope"], out / record["files"]["flamegraph"]
    # the model is built in the spawned worker: its frames are there only if --subprocesses followed it
    assert frame_mentions(speedscope, "setup_model") and frame_mentions(speedscope, "vits.py")
    assert "<svg" in svg.read_text()[:2000]
    table = record["cold_start"]
    phases = {row["phase"]: row for row in table["rows"]}
    assert list(phases) == list(coldstart.PHASES)
    assert phases["imports"]["seconds"] > 0 and phases["first synthesis"]["seconds"] > 0
    assert sum(row["seconds"] for row in table["rows"]) == pytest.approx(table["sampled_cold_start_s"], abs=0.05)
    assert any(f["file"].startswith("torch/") for f in phases["imports"]["top_frames"])
    assert "where cold start goes" in done.stderr


def hide_memray(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "memray" else real(name, *a))


@pytest.mark.integration
def test_run_with_a_missing_profiler_says_so_and_still_times_and_profiles(tiny, tmp_path, monkeypatch, capsys):
    hide_memray(monkeypatch)
    out = tmp_path / "run"
    code = cli.main(["run", "--strategy", "singleton", "--model", "vits-tiny", "--requests", "2", "--repeat", "1",
                     "--out", str(out), "--profile", "memray,py-spy"])
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    assert "memray is not installed" in err and "pip install memray" in err
    with open(out / "summary.csv", newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["ok"]  # the timed cell, and only it
    records = {r["tool"]: r for r in load_records(out, "profile")}
    assert records["memray"]["status"] == "unavailable"
    assert records["py-spy"]["status"] == "ok" and records["py-spy"]["requests"] == 1
    assert (out / records["py-spy"]["files"]["speedscope"]).is_file()
    assert records["py-spy"]["folder"] == f"profiles/{file_safe('singleton__vits-tiny__single')}/py-spy"


@pytest.mark.integration
def test_profile_with_a_missing_py_spy_is_one_clear_line(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(profile_pyspy.shutil, "which", lambda *a, **k: None)
    code = cli.main(["profile", "--tool", "py-spy", "--strategy", "naive", "--model", "vits-tiny",
                     "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "py-spy is not installed" in err[0] and "pip install py-spy" in err[0]


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_refused_ptrace_is_explained(tmp_path):
    """py-spy's real refusal (an unprivileged user dumping root's process) becomes the one-line fix."""
    pyspy = profile_pyspy.executable()
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", pyspy, "dump",
                           "--pid", str(os.getpid())], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    problem = profile_pyspy.attach_problem(done.stdout + done.stderr)
    assert problem and "CAP_SYS_PTRACE" in problem


@pytest.mark.integration
def test_bad_profile_input_is_one_line(tiny, tmp_path):
    soak = ttsload("profile", "--tool", "memray", "--strategy", "naive", "--model", "vits-tiny", "--scenario", "soak")
    assert soak.returncode == 2 and "scenario 'soak' cannot be profiled yet" in soak.stderr
    tool = ttsload("profile", "--tool", "perf", "--strategy", "naive", "--model", "vits-tiny")
    assert tool.returncode == 2 and "unknown profiler 'perf'" in tool.stderr


@pytest.mark.integration
def test_a_hung_worker_leaves_its_stacks_before_the_kill(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TTSLOAD_TEST_STRATEGIES", "1")
    out = tmp_path / "hang"
    done = ttsload("run", "--strategy", "worker+hang-eager", "--model", "vits-tiny", "--requests", "1",
                   "--repeat", "1", "--timeout", "25", "--out", str(out))
    assert done.returncode == 1
    [failure] = load_records(out, "failure")
    assert failure["reason"].startswith("deadline") and "py-spy dump of" in failure["evidence"][0]
    dumps = list((out / "dumps").glob("*/py-spy-dump-*.txt"))
    assert len(dumps) >= 2  # the cell process and its worker, at least
    texts = [d.read_text() for d in dumps]
    assert any("HangEagerLoader.fill" in t and "strategies/testing.py" in t for t in texts)
    assert any("PipeClient.wait_for" in t for t in texts)  # the parent, waiting on its worker
    pids = [int(d.stem.rsplit("-", 1)[1]) for d in dumps]
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_pyspy_phases_find_a_plugins_loader(tmp_path: Path) -> None:
    """A third-party loader's fill, in a file outside ttsload, counts as weights: the template's phase method
    in strategies/base.py marks it, whatever file the plugin lives in."""
    base = "/site-packages/ttsload/strategies/base.py"
    frames = [{"name": "main", "file": "/site-packages/ttsload/bench/cell/entry.py"},
              {"name": "PhasedLoader.load", "file": base},
              {"name": "PhasedLoader.weights_phase", "file": base},
              {"name": "MyLoader.fill", "file": "/home/someone/plugin/my_loader.py"},
              {"name": "Loader.runtime_phase", "file": base},
              {"name": "serve_request", "file": base}]
    samples = [[0, 4], [0, 1, 2, 3], [0, 1, 2, 3], [0, 5]]
    profile = {"shared": {"frames": frames},
               "profiles": [{"type": "sampled", "samples": samples, "weights": [0.1, 0.2, 0.2, 0.3]}]}
    path = tmp_path / "cold.speedscope.json"
    path.write_text(json.dumps(profile))
    seconds = {row["phase"]: row["seconds"] for row in coldstart.phase_table(path)["rows"]}
    assert seconds["weights"] == pytest.approx(0.4) and seconds["imports"] == pytest.approx(0.1)
    assert seconds["first synthesis"] == pytest.approx(0.3)


def test_top_frames_keep_two_chains_of_equal_time(tmp_path: Path) -> None:
    """torch's import and scipy's may take the same time: both are named; a frame's own callee chain is not."""
    base = "/site-packages/ttsload/strategies/base.py"
    frames = [{"name": "Loader.runtime_phase", "file": base},
              {"name": "<module>", "file": "/site-packages/torch/__init__.py"},
              {"name": "<module>", "file": "/site-packages/torch/_C.py"},
              {"name": "<module>", "file": "/site-packages/scipy/signal/__init__.py"},
              {"name": "<module>", "file": "/site-packages/librosa/filters.py"}]
    samples = [[0, 1, 2]] * 10 + [[0, 3]] * 10 + [[0, 4]] * 5
    profile = {"shared": {"frames": frames},
               "profiles": [{"type": "sampled", "samples": samples, "weights": [0.1] * len(samples)}]}
    path = tmp_path / "imports.speedscope.json"
    path.write_text(json.dumps(profile))
    [imports] = [row for row in coldstart.phase_table(path)["rows"] if row["phase"] == "imports"]
    named = [frame["file"] for frame in imports["top_frames"]]
    assert named[:2] == ["torch/_C.py", "scipy/signal/__init__.py"] and "torch/__init__.py" not in named
    assert named[2] == "librosa/filters.py"
