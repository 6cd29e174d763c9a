"""Scenario scripts end to end on the tiny model: pools, prefork sharing, scale-out, a killed worker,
model switching, resume, and the script checks. (The soak's leak analysis is in test_soak.py, http in
test_http.py.)"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.scenario import loading as scenarios
from ttsload.bench.scenario.schema import ScenarioError

POOL = """
summary = "test: pools of 1 and 2 workers"
kind = "pool"
[workers]
counts = [1, 2]
threads = 1          # equal thread counts everywhere: fp32 output must then be bit-identical
[texts]
distinct = 4
max_chars = 80
[[phase]]
do = "requests"
count = 4
concurrency = "workers"
"""

DRILL = """
summary = "test: scale out under load, then lose a worker"
kind = "pool"
[workers]
counts = [2]
threads = 1
[texts]
distinct = 4
max_chars = 60
[[phase]]
do = "requests"
count = 6
concurrency = 2
add_workers = 1
add_after = 1
[[phase]]
do = "kill_worker"
worker = 0
[[phase]]
do = "requests"
count = 4
concurrency = 2
"""

SWITCH = """
summary = "test: two models through an LRU of 1 and 2"
kind = "switch"
[switch]
lru = [1, 2]
[texts]
distinct = 3
max_chars = 60
[[phase]]
do = "requests"
count = 6
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def records(out: Path, kind: str) -> list[dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def run_script(folder: Path, name: str, script: str, strategies: str, models: str = "vits-tiny") -> Path:
    """`ttsload run` of one script, one repetition; the results folder."""
    out = folder / "out"
    done = ttsload("run", "--scenario", str(write(folder, name, script)), "--strategy", strategies,
                   "--model", models, "--repeat", "1", "--out", str(out), "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pool_run(tiny, tmp_path_factory) -> Path:
    return run_script(tmp_path_factory.mktemp("pool"), "pool", POOL, "singleton,prefork+mmap")


@pytest.mark.integration
def test_pool_rows_per_worker_count(pool_run):
    found = {(r["strategy"], r["scenario"]): r for r in rows(pool_run)}
    assert set(found) == {(s, f"pool@n{n}") for s in ("singleton", "prefork+mmap") for n in (1, 2)}
    for row in found.values():
        assert row["status"] == "ok", row["reason"]
        assert float(row["pss_total_mb"]) > 0 and float(row["uss_total_mb"]) > 0
        assert float(row["rss_sum_mb"]) >= float(row["pss_total_mb"])
        assert row["requests"] == "4" and row["torch_threads"] == "1"
    assert found[("singleton", "pool@n2")]["workers"] == "2"
    # two spawned workers each hold a model; one more worker is not free
    one, two = found[("singleton", "pool@n1")], found[("singleton", "pool@n2")]
    assert float(two["uss_total_mb"]) > float(one["uss_total_mb"])
    assert found[("prefork+mmap", "pool@n2")]["loads"] == "1"  # loaded once, in the parent
    assert found[("singleton", "pool@n2")]["loads"] == "2"


@pytest.mark.integration
def test_prefork_workers_really_share_the_weights(pool_run, tiny):
    steady = next(s for s in records(pool_run, "sample") if s.get("steady") and s["cell"].startswith("prefork+mmap|")
                  and "@n2|" in s["cell"])
    assert steady["n"] == 3  # parent + 2 forked workers
    weights = tiny.checkpoint.stat().st_size
    rss_sum = sum(p["rss"] for p in steady["processes"])
    pss_sum = sum(p["pss"] for p in steady["processes"])
    assert rss_sum - pss_sum >= weights, (rss_sum, pss_sum, weights)


@pytest.mark.integration
def test_pool_output_equals_across_strategies_and_worker_counts(pool_run):
    by_index: dict[int, set[str]] = {}
    for request in records(pool_run, "request"):
        by_index.setdefault(request["index"], set()).add(request["audio_sha256"])
    assert len(by_index) == 4 and all(len(digests) == 1 for digests in by_index.values()), by_index


@pytest.mark.integration
def test_pool_phase_records(pool_run):
    phases = records(pool_run, "phase")
    assert {p["phase"] for p in phases} == {"c1", "c2"}
    assert all(p["ok"] == 4 and p["failed"] == 0 and p["latency_p50_s"] > 0 for p in phases)


@pytest.fixture(scope="module")
def drill_run(tiny, tmp_path_factory) -> Path:
    return run_script(tmp_path_factory.mktemp("drill"), "drill", DRILL, "singleton,prefork+mmap")


@pytest.mark.integration
def test_scale_out_under_load_is_timed(drill_run):
    for row in rows(drill_run):
        assert row["status"] == "ok", row["reason"]
        assert row["workers"] == "3"
        assert float(row["scaleout_ready_s"]) > 0
    ready = [e for e in records(drill_run, "event") if e["event"] == "worker_ready"]
    assert sorted(e["worker"] for e in ready if e["cell"].startswith("singleton|")) == [0, 1, 2]


@pytest.mark.integration
def test_killed_worker_is_recorded_and_the_rest_serve(drill_run):
    for row in rows(drill_run):
        assert row["worker_deaths"] == "1" and row["requests"] == "10" and row["failed_requests"] == "0"
    deaths = [e for e in records(drill_run, "event") if e["event"] == "worker_died"]
    assert len(deaths) == 2  # one per cell
    for death in deaths:
        assert death["worker"] == 0 and death["exit_code"] == -9
        assert isinstance(death["last_request"], int) and 0 <= death["last_request"] < 6


@pytest.mark.integration
def test_switch_counts_loads_and_evictions(tiny, tmp_path):
    out = run_script(tmp_path, "switch", SWITCH, "mmap", "vits-tiny,vits-tiny-2")
    found = {r["scenario"]: r for r in rows(out)}
    assert set(found) == {"switch@k1", "switch@k2"}
    assert found["switch@k1"]["model"] == "vits-tiny+vits-tiny-2"
    # round-robin over two models: k=1 loads on every request, k=2 loads each model once
    assert (found["switch@k1"]["loads"], found["switch@k1"]["evictions"]) == ("6", "5")
    assert (found["switch@k2"]["loads"], found["switch@k2"]["evictions"]) == ("2", "0")
    assert float(found["switch@k1"]["model_load_s"]) > 0
    assert all(float(r["pss_anon_trimmed_mb"]) > 0 for r in found.values())  # the trimmed steady reading too
    by_model = {}
    for request in records(out, "request"):  # the two models' weights differ, so do their outputs
        by_model.setdefault(request["model"], set()).add(request["audio_sha256"])
    assert by_model.keys() == {"vits-tiny", "vits-tiny-2"} and not by_model["vits-tiny"] & by_model["vits-tiny-2"]


@pytest.mark.integration
def test_resume_skips_finished_cells(tiny, tmp_path):
    out = tmp_path / "out"
    first = ttsload("run", "--strategy", "mmap", "--model", "vits-tiny", "--requests", "1", "--repeat", "1",
                    "--out", str(out), "--no-history")
    assert first.returncode == 0, first.stderr[-2000:]
    again = ttsload("run", "--strategy", "mmap,singleton", "--model", "vits-tiny", "--requests", "1", "--repeat", "1",
                    "--resume", str(out), "--no-history")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed: 1 of 2 finished before" in again.stderr
    assert sorted(r["strategy"] for r in rows(out)) == ["mmap", "singleton"]  # mmap kept, not run twice


@pytest.mark.integration
def test_sampler_off_takes_no_samples(tiny, tmp_path):
    script = 'summary = "on/off"\nkind = "single"\n[sampler]\nmodes = ["on", "off"]\n[texts]\ndistinct = 2\n'
    out = run_script(tmp_path, "sampler", script, "mmap")
    found = {r["scenario"]: r for r in rows(out)}
    assert found["sampler@sampler-off"]["samples"] == "0" and found["sampler@sampler-off"]["sampler_cpu_s"] == ""
    assert int(found["sampler@sampler-on"]["samples"]) > 0 and float(found["sampler@sampler-on"]["sampler_cpu_s"]) > 0
    assert found["sampler@sampler-off"]["pss_mb"] != ""  # the steady reading is taken either way
    assert found["sampler@sampler-on"]["peak_pss_mb"] != ""  # full readings at load events: PSS, not RSS only


@pytest.mark.parametrize("text, key", [
    ('summary = "x"\nworkers = 3\n', "workers"),
    ('summary = "x"\n[workers]\ncounts = [0, 2]\n', "workers.counts"),
    ('summary = "x"\n[workers]\ncount = [1]\n', "workers.count"),
    ('summary = "x"\nkind = "pool"\n[[phase]]\ndo = "sleep"\n', "phase[0].do"),
    ('summary = "x"\n[[phase]]\ndo = "requests"\ncount = 3\nrate = 2.0\nconcurrency = 2\n', "phase[0].rate"),
    ('summary = "x"\nkind = "switch"\n[[phase]]\ndo = "trim"\n', "phase[0].do"),
    ('summary = "x"\nkind = "pool"\n[[phase]]\ndo = "idle"\n', "phase[0].do"),
    ('summary = "x"\nkind = "idle"\n[[phase]]\ndo = "requests"\ncount = 2\nrate = 1.0\n', "phase[0].rate"),
    ('kind = "pool"\n', "summary"),
    ('summary = "x"\nrepeats = 2\n', "repeats"),
    ('summary = "x"\n[texts]\nmin_chars = 90\nmax_chars = 30\n', "texts.max_chars"),
])
def test_bad_scenario_file_names_file_and_key(tmp_path, text, key):
    path = write(tmp_path, "bad", text)
    with pytest.raises(ScenarioError) as error:
        scenarios.load(str(path))
    assert str(error.value).startswith(f"{path}: {key}: "), str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.integration
def test_bad_scenario_on_the_command_line(tmp_path):
    path = write(tmp_path, "bad", 'summary = "x"\n[workers]\ncounts = "many"\n')
    done = ttsload("run", "--scenario", str(path), "--model", "vits-tiny")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"ttsload: error: {path}: workers.counts: expected a list of at least 1 item(s), "
                                   "each an integer from 1 to 256, got 'many'")
    unknown = ttsload("run", "--scenario", "no-such-scenario")
    assert unknown.returncode == 2 and "unknown scenario 'no-such-scenario'" in unknown.stderr


@pytest.mark.integration
def test_builtin_scenarios_all_load_and_list():
    names = set(scenarios.available())
    assert {"single", "workers", "burst", "switch", "soak", "http", "sampler"} <= names
    for name in names:
        scenario = scenarios.load(name)
        assert scenario.variants()
    listing = ttsload("scenarios")
    assert listing.returncode == 0 and all(name in listing.stdout for name in names)


@pytest.mark.integration
def test_every_builtin_scenario_runs_end_to_end_short(tiny, tmp_path):
    """The shipped scripts themselves, shortened: one strategy, one repetition, 3 requests per phase."""
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", "single,workers,burst,soak,http,sampler", "--strategy", "mmap",
                   "--model", "vits-tiny", "--repeat", "1", "--requests", "3", "--out", str(out), "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    switched = ttsload("run", "--scenario", "switch", "--strategy", "mmap", "--model", "vits-tiny,vits-tiny-2",
                       "--repeat", "1", "--requests", "3", "--out", str(out), "--no-history")
    assert switched.returncode == 0, switched.stderr[-3000:]
    found = {r["scenario"]: r for r in rows(out)}
    assert set(found) == {"single", "workers@n1", "workers@n2", "workers@n4", "burst@n1", "soak@n1",
                          "http@n2-no-preload", "http@n2-preload", "sampler@sampler-on", "sampler@sampler-off",
                          "switch@k1", "switch@k2"}
    assert all(r["status"] == "ok" for r in found.values()), {k: r["reason"] for k, r in found.items()}
    assert found["workers@n4"]["workers"] == "4" and found["burst@n1"]["workers"] == "4"
    assert found["soak@n1"]["trims"] == "1" and found["soak@n1"]["leak_mb_per_1k"] == ""  # 3 requests: no fit
    assert {p["phase"] for p in records(out, "phase") if "|http@" in p["cell"]} == {"closed-c1", "closed-c4",
                                                                                   "poisson-1rps"}
