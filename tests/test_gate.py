"""The regression gate on real runs of the tiny model (recorded, or made live: tests/recordings.py): quiet on
repeats, loud on planted faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.recordings import PARAMS, PLANTED_REPEAT, made
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.results import load_records

CELL = "singleton/vits-tiny/single"
# Absolute thresholds above the noise measured for the 6 MiB model (cell medians of weights_s moved
# < 0.6 s between runs, of pss_anon_mb < 1.6 MiB) and below the planted faults: slow-eager sleeps 2 s
# in its weights phase; copy-eager's extra copy of the weights added ~4 MiB of anonymous memory
# (not all of its 5.7 MiB: part reuses heap the allocator kept from reading the checkpoint).
PLANT_SPEC = "weights_s:median:1,pss_anon_mb:median:2.5"
pytestmark = pytest.mark.alone  # the live runs' timings are judged: nothing may run beside them


@pytest.fixture(scope="module")
def live_runs(request, tmp_path_factory) -> dict[str, Path]:
    """tests/recordings.py's gate_runs made live: same1 (5 repetitions), same2, same3, then each planted fault
    standing in for eager; `history` holds the first five."""
    root = made("gate-planted", request, tmp_path_factory.mktemp("gate") / "root")
    names = ("same1", "same2", "same3", "slow", "copy", "anon", "cpu")
    return {**{name: root / name for name in names}, "history": root / "history.jsonl"}


@pytest.fixture(scope="module", params=PARAMS)
def runs(request, tmp_path_factory) -> dict[str, Path]:
    """same1 (5 repetitions) and same2 of one config as recorded (tests/data/results/gate), or all the live runs."""
    if request.param == "live":
        return request.getfixturevalue("live_runs")
    root = made("gate", request, tmp_path_factory.mktemp("gate") / "root")
    return {"same1": root / "same1", "same2": root / "same2"}


def gate(baseline: Path, current: Path, *args: str):
    return cli("gate", "--baseline", str(baseline), "--current", str(current), *args)


@pytest.mark.parametrize("spec", [None, PLANT_SPEC])
def test_identical_runs_never_fail_the_gate(runs, spec):
    fail = ("--fail", spec) if spec else ()
    for baseline, current in [pair for pair in (("same1", "same2"), ("same1", "same3"), ("same2", "same3"))
                              if pair[1] in runs]:  # the recording holds same1 and same2
        done = gate(runs[baseline], runs[current], *fail)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ttsload gate: pass" in done.stdout and CELL in done.stdout


@pytest.mark.integration
def test_a_planted_slow_load_fails_naming_metric_and_cell(live_runs, tmp_path):
    verdict = tmp_path / "verdict.json"
    done = gate(live_runs["same1"], live_runs["slow"], "--fail", PLANT_SPEC, "--json", str(verdict))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REGRESSION {CELL}: weights_s median" in done.stdout
    data = json.loads(verdict.read_text())
    assert data["verdict"] == "regression" and data["exit_code"] == 1
    failing = {(c["cell"], c["metric"]) for c in data["checks"] if c["verdict"] == "REGRESSION"}
    assert failing == {(CELL, "weights_s")}  # memory did not move: only the slow phase is flagged


@pytest.mark.integration
def test_a_planted_weight_copy_fails_on_memory(live_runs):
    done = gate(live_runs["same1"], live_runs["copy"], "--fail", PLANT_SPEC)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REGRESSION {CELL}: pss_anon_mb median" in done.stdout
    assert f"REGRESSION {CELL}: weights_s" not in done.stdout


@pytest.mark.integration
def test_saved_baseline_is_compact_and_gates_like_its_folder(live_runs, tmp_path):
    done = cli("baseline", "save", str(live_runs["same1"]), "tiny", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "tiny.json"
    data = json.loads(saved.read_text())
    assert saved.stat().st_size < 20_000
    (cell,) = data["cells"]
    cold = cell["metrics"]["cold_start_s"]
    assert len(cold["values"]) == int(PLANTED_REPEAT) and cold["ci95"][0] <= cold["median"] <= cold["ci95"][1]
    recorded = load_records(live_runs["same1"], "run")[0]["environment"]["packages"]["coqui-tts"]
    assert data["environment"]["packages"]["coqui-tts"] == recorded and recorded.count(".") == 2
    assert gate(saved, live_runs["same2"]).returncode == 0
    assert gate(saved, live_runs["slow"], "--fail", PLANT_SPEC).returncode == 1


def _edited_baseline(runs, tmp_path, edit) -> Path:
    assert cli("baseline", "save", str(runs["same1"]), "b", "--dir", str(tmp_path)).returncode == 0
    path = tmp_path / "b.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _one_error_line(done) -> str:
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert done.returncode == 2 and len(errors) == 1, done.stdout + done.stderr
    return errors[0]


def test_a_cell_missing_from_current_is_unusable_input(runs, tmp_path):
    def add_cell(data):
        data["cells"].append({**data["cells"][0], "strategy": "mmap"})

    line = _one_error_line(gate(_edited_baseline(runs, tmp_path, add_cell), runs["same2"]))
    assert "1 baseline cell(s) missing" in line and "mmap/vits-tiny/single" in line


def test_a_baseline_of_another_format_version_is_unusable(runs, tmp_path):
    path = _edited_baseline(runs, tmp_path, lambda data: data.update(version=99))
    assert "format version 99" in _one_error_line(gate(path, runs["same2"]))


@pytest.mark.integration
def test_too_few_repetitions_are_said_not_judged(live_runs, tmp_path):
    def keep_two(data):
        for entry in data["cells"][0]["metrics"].values():
            entry["values"] = entry["values"][:2]

    done = gate(_edited_baseline(live_runs, tmp_path, keep_two), live_runs["slow"], "--fail", PLANT_SPEC)
    assert done.returncode == ExitCode.UNDECIDED
    assert "insufficient repetitions" in done.stdout and "REGRESSION" not in done.stdout


def test_a_different_environment_warns_but_still_compares(runs, tmp_path):
    path = _edited_baseline(runs, tmp_path, lambda data: data["environment"].update(cpu="Some Other CPU"))
    done = gate(path, runs["same2"])
    assert done.returncode == 0
    assert "WARNING" in done.stderr and "Some Other CPU" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fail", "cold_start_s:median"], "bad --fail item 'cold_start_s:median'"),
        (["--fail", "cold_start_s:p95:+10%"], "statistic 'p95' is not one of"),
        (["--fail", "no_such_metric:median:+10%"], "metric 'no_such_metric' is not in"),
        (["--fail", "scaleout_ready_s:median:+5%"], "metric 'scaleout_ready_s' is not in"),  # burst only
    ],
)
def test_bad_specs_exit_2_with_one_line(runs, args, message):
    assert message in _one_error_line(gate(runs["same1"], runs["same2"], *args))


def test_bad_inputs_exit_2_with_one_line(runs, tmp_path):
    assert "no such results folder" in _one_error_line(gate(tmp_path / "nope", runs["same1"]))
    assert "not a ttsload results folder" in _one_error_line(gate(tmp_path, runs["same1"]))
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert "is not valid JSON" in _one_error_line(gate(junk, runs["same1"]))


@pytest.mark.integration
def test_history_marks_the_planted_step_and_nothing_else(live_runs, tmp_path):
    plot = tmp_path / "weights.png"
    done = cli("history", "weights_s", "--history", str(live_runs["history"]), "--threshold", "1",
                   "--out", str(plot))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{CELL}:"
    points = [line for line in lines if "median" in line]
    assert len(points) == 5  # same1, same2, same3, slow, copy in date order
    assert ["<- step" in line for line in points[:4]] == [False, False, False, True]
    assert "<- step: regression" in points[3]
    assert plot.stat().st_size > 10_000


def test_cpu_time_columns_exist_and_stay_within_wall_time_times_cores(runs):
    import csv

    rows = list(csv.DictReader((runs["same2"] / "summary.csv").open()))
    assert len(rows) == 3
    pairs = [("cold_start_cpu_s", "cold_start_s"), ("import_cpu_s", "import_s"), ("construct_cpu_s", "construct_s"),
             ("weights_cpu_s", "weights_s"), ("first_audio_cpu_s", "first_audio_s"),
             ("request_cpu_p50_s", "latency_p50_s")]
    cores = load_records(runs["same2"], "run")[0]["environment"]["cores_logical"]  # the machine that ran it
    for row in rows:
        for cpu, wall in pairs:
            assert row[cpu] not in ("", None), f"{cpu} empty"
            # every thread of the tree together cannot outrun the cores; 20 ms for stamps and clock ticks
            assert 0 < float(row[cpu]) <= float(row[wall]) * cores + 0.02, (cpu, row[cpu], wall, row[wall])
        assert float(row["cold_start_cpu_s"]) >= float(row["import_cpu_s"]) + float(row["weights_cpu_s"])


def test_every_cell_records_the_host_calibration_taken_before_it(runs):
    import csv

    rows = list(csv.DictReader((runs["same2"] / "summary.csv").open()))
    for row in rows:
        for part in ("host_python_s", "host_memcopy_s", "host_matmul_s"):
            assert 0 < float(row[part]) < 5, (part, row[part])
    assert len({row["host_python_s"] for row in rows}) == len(rows)  # one reading per cell, not one per run


@pytest.mark.integration
def test_planted_extra_anonymous_memory_fails_the_trimmed_reading(live_runs):
    done = gate(live_runs["same1"], live_runs["anon"], "--fail", "pss_anon_trimmed_mb:median:+5%")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REGRESSION {CELL}: pss_anon_trimmed_mb median" in done.stdout


@pytest.mark.integration
def test_planted_cpu_in_the_weights_phase_fails_the_default_spec_on_cpu_seconds(live_runs):
    done = gate(live_runs["same1"], live_runs["cpu"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REGRESSION {CELL}: weights_cpu_s median" in done.stdout
    assert f"REGRESSION {CELL}: pss_anon_trimmed_mb" not in done.stdout
