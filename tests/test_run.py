"""`ttsload run` end to end on the tiny model: fresh processes, sane summary, failures recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import psutil
import pytest

from tests.conftest import ttsload

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

PRESETS = "naive,singleton,mmap,quantized,subprocess-worker,prefork+eager"
REQUESTS = 3
PHASES = ("import_s", "verify_s", "construct_s", "weights_s", "first_audio_s")


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def preset_run(tiny, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("run") / "presets"
    done = ttsload("run", "--strategy", PRESETS, "--model", "vits-tiny", "--requests", str(REQUESTS),
                   "--repeat", "1", "--out", str(out), env={"TTSLOAD_WARMUP": "1"})  # as a user runs it
    return out, done


def test_run_succeeds_and_prints_the_table(preset_run):
    out, done = preset_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert "medians over repetitions" in done.stderr
    for preset in PRESETS.split(","):
        assert preset in done.stderr


def test_summary_fields_present_positive_and_consistent(preset_run):
    out, _ = preset_run
    table = rows(out)
    assert {r["strategy"] for r in table} == set(PRESETS.split(","))
    for row in table:
        assert row["status"] == "ok" and row["scenario"] == "single" and row["cache"] == "warm"
        values = {k: float(row[k]) for k in ("cold_start_s", "rss_mb", "pss_mb", "uss_mb", "peak_pss_mb",
                                              "peak_rss_mb", "rss_hwm_mb",
                                              "latency_p50_s", "latency_p90_s", "latency_p99_s", "rtf", *PHASES)}
        assert all(v > 0 for v in values.values()), values
        assert values["uss_mb"] <= values["pss_mb"] <= values["rss_mb"]
        assert values["rss_hwm_mb"] >= max(values["rss_mb"], values["peak_rss_mb"])  # kernel peak bounds samples
        assert sum(values[p] for p in PHASES) <= values["cold_start_s"]
        assert values["latency_p50_s"] <= values["latency_p90_s"] <= values["latency_p99_s"]
        assert int(row["requests"]) == REQUESTS


def test_loads_counted_per_topology(preset_run):
    by_strategy = {r["strategy"]: r for r in rows(preset_run[0])}
    assert int(by_strategy["naive"]["loads"]) == REQUESTS
    assert all(int(by_strategy[s]["loads"]) == 1
               for s in ("singleton", "mmap", "quantized", "subprocess-worker", "prefork+eager"))


def test_fp32_presets_agree_and_quantized_differs(preset_run):
    by_strategy = {r["strategy"]: r["output_digest"] for r in rows(preset_run[0])}
    assert len({by_strategy[s] for s in ("naive", "singleton", "mmap", "subprocess-worker", "prefork+eager")}) == 1
    assert by_strategy["quantized"] != by_strategy["naive"]


def test_worker_tree_is_measured_as_a_tree(preset_run):
    by_strategy = {r["strategy"]: r for r in rows(preset_run[0])}
    assert int(by_strategy["subprocess-worker"]["processes"]) >= 2
    assert int(by_strategy["prefork+eager"]["processes"]) == 2  # the loaded parent and one forked worker
    assert int(by_strategy["singleton"]["processes"]) == 1


def test_results_jsonl_has_every_record_type(preset_run, tiny):
    out, _ = preset_run
    recs = records(out)
    kinds = {r["type"] for r in recs}
    assert {"run", "event", "sample", "request", "cell"} <= kinds
    run = next(r for r in recs if r["type"] == "run")
    assert run["schema"] == 1 and run["environment"]["packages"]["coqui-tts"] == "0.28.0"
    assert sum(1 for r in recs if r["type"] == "request") == REQUESTS * len(PRESETS.split(","))
    assert any(r.get("steady") for r in recs if r["type"] == "sample")
    # the warm-up ran first, unmeasured: every loader's runtime imported, every model file read once
    (warmup,) = [r for r in recs if r["type"] == "warmup"]
    assert warmup["status"] == "ok" and warmup["models"] == ["vits-tiny"] and warmup["seconds"] > 0
    assert {"eager", "mmap"} <= set(warmup["loaders"])
    assert warmup["read_bytes"] >= tiny.checkpoint.stat().st_size + tiny.config.stat().st_size
    assert recs.index(warmup) < min(i for i, r in enumerate(recs) if r["type"] == "cell")


def test_a_broken_model_fails_its_cells_and_the_others_still_run(tiny, tiny_copy, tmp_path):
    checkpoint = tiny_copy / "model_file.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    out = tmp_path / "mixed"
    done = ttsload("run", "--strategy", "singleton,mmap", "--model", f"{tiny_copy},vits-tiny",
                   "--requests", "1", "--repeat", "1", "--out", str(out), "--no-warmup", env={"TTSLOAD_WARMUP": "1"})
    assert done.returncode == 1
    assert not [r for r in records(out) if r["type"] == "warmup"]  # --no-warmup
    table = rows(out)
    broken = [r for r in table if r["model"] != "vits-tiny"]
    assert len(broken) == 2 and all(r["status"] == "failed" for r in broken)
    assert all("sha256 mismatch" in r["reason"] and "model_file.pth" in r["reason"] for r in broken)
    assert all(r["status"] == "ok" for r in table if r["model"] == "vits-tiny")
    assert "FAILED sha256 mismatch" in done.stderr
    assert "ok, cold start" in done.stderr  # a line per finished cell


def test_a_cell_past_its_deadline_is_killed_with_its_tree(tiny, tmp_path):
    out = tmp_path / "deadline"
    before = {p.pid for p in psutil.process_iter()}
    done = ttsload("run", "--strategy", "subprocess-worker", "--model", "vits-tiny", "--requests", "1",
                   "--repeat", "1", "--timeout", "0.5", "--out", str(out))
    assert done.returncode == 1
    (row,) = rows(out)
    assert row["status"] == "failed" and row["reason"].startswith("deadline")
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.pid not in before  # this run's cells only
                 and "ttsload.bench.cell" in (line := " ".join(p.info["cmdline"] or [])) and str(out) in line]
    assert leftovers == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "naive,warp-drive"], "unknown strategy 'warp-drive'"),
        (["--model", "/no/such/model"], "model not found: '/no/such/model'"),
        (["--requests", "0"], "must be at least 1"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tiny, tmp_path, args, message):
    done = ttsload("run", "--model", "vits-tiny", *args, "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert message in done.stderr
    assert len([line for line in done.stderr.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "x" / "results.jsonl").exists()


def test_quality_of_each_strategy_against_the_fp32_reference(preset_run):
    out, done = preset_run
    quality = {r["strategy"]: r for r in records(out) if r["type"] == "quality"}
    assert set(quality) == set(PRESETS.split(","))
    assert quality["quantized"]["reference"] in ("naive", "singleton", "mmap", "subprocess-worker", "prefork+eager")
    for strategy in ("naive", "singleton", "mmap", "subprocess-worker"):
        assert quality[strategy]["identical"] and quality[strategy]["requests"] == REQUESTS
    assert not quality["quantized"]["identical"]
    assert quality["quantized"]["snr_db_min"] >= 20.0  # the bound tests/test_strategies.py states for bf16
    assert "output vs fp32 reference" in done.stderr


def test_sigterm_keeps_finished_cells_and_kills_the_running_one(tiny, ttsload_home, tmp_path):
    """A CI timeout or `kill` stops a run like Ctrl-C: finished cells stay, no cell process is left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-P", "-m", "ttsload", "run", "--strategy", "mmap,singleton",
                            "--model", "vits-tiny", "--requests", "1", "--repeat", "3", "--out", str(out),
                            "--no-history"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=os.environ.copy())
    deadline = time.monotonic() + 300
    while not ((out / "summary.csv").is_file() and len(rows(out)) >= 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr[-2000:]
    assert "interrupted: finished cells are kept" in stderr
    kept = rows(out)
    assert 1 <= len(kept) < 6 and all(r["status"] == "ok" for r in kept)
    left = [p for p in psutil.process_iter(["cmdline"])
            if "ttsload.bench.cell" in (line := " ".join(p.info["cmdline"] or [])) and str(out) in line]
    assert not left, [p.pid for p in left]
