"""Statistics, schemas and the gate on the recorded runs (tests/data/results/), with copies changed at test
time where a case needs a regression or a damaged file; and the unit tier's own guard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RESULTS, UNIT_TIER, _starts_ttsload, cli
from tests.recordings import PLAN
from ttsload.bench import planid
from ttsload.bench.analysis import stats
from ttsload.bench.cells import CellKey
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.regression.resultset import ResultSet
from ttsload.bench.results import RESULTS as RESULTS_FILE
from ttsload.bench.results import load_records

GATE = RESULTS / "gate"
GROUP = ("singleton", "vits-tiny", "single")
CELL = "singleton/vits-tiny/single"


def changed_copy(source: Path, target: Path, edit) -> Path:
    """A copy of a recorded results folder whose cell records went through `edit(row)` (summary.csv dropped:
    the gate and the report read results.jsonl)."""
    target.mkdir(parents=True)
    lines = []
    for record in load_records(source):
        if record.get("type") == "cell":
            edit(record)
        lines.append(json.dumps(record))
    (target / RESULTS_FILE).write_text("\n".join(lines) + "\n")
    return target


def scaled(metric: str, factor: float):
    def edit(row: dict) -> None:
        if row.get("status") == "ok":
            row[metric] = row[metric] * factor
    return edit


# --- statistics ----------------------------------------------------------------------------------------------

def test_recorded_repetitions_become_result_sets():
    baseline = ResultSet.from_folder(GATE / "same1")
    assert baseline.repetitions == {GROUP: 5} and not baseline.failed
    assert baseline.options["interval"] == 2.0 and baseline.options["requests"] == 1
    report = ResultSet.from_folder(RESULTS / "report" / "run")
    broken = {group: n for group, n in report.failed.items() if group[1].endswith("broken-model")}
    assert len(broken) == 3 and set(broken.values()) == {2}  # the corrupted copy: every repetition failed
    assert {g for g, n in report.repetitions.items() if n == 2} == {(s, "vits-tiny", "single")
                                                                     for s in ("singleton", "mmap", "quantized")}


def test_intervals_and_rank_tests_on_recorded_repetitions():
    cold = ResultSet.from_folder(GATE / "same1").cells[GROUP]["cold_start_s"]
    median, low, high, coverage = stats.median_interval(cold)
    assert low <= median <= high and median == stats.statistic(cold, "median") and coverage >= 0.75
    boot = stats.bootstrap_interval(cold)
    assert boot == stats.bootstrap_interval(cold) and boot[0] <= median <= boot[1]  # seeded: reproducible
    doubled = [2 * x for x in cold]
    assert stats.p_worse(doubled, cold) <= 0.01  # 5 against 5, every one slower: p = 1/252
    assert stats.p_worse(cold, doubled) > 0.9 and stats.p_worse(cold, cold) >= 0.5


# --- schemas: cell ids, plan hash, result schema --------------------------------------------------------------

@pytest.mark.parametrize("folder", ["report/run", "gate/same1", "shards/shard0", "shards/shard1"])
def test_every_recorded_cell_id_parses_back_to_its_row(folder):
    records = load_records(RESULTS / folder)
    rows = [r for r in records if r["type"] == "cell"]
    assert rows
    for row in rows:
        key = CellKey.of_row(row)
        assert CellKey.parse(key.id) == key and (key.strategy, key.model, key.scenario) == (
            row["strategy"], row["model"], row["scenario"])
    ids = {CellKey.of_row(r).id for r in rows}
    for record in records:  # the samples, events and requests of a cell name one of its rows
        if "cell" in record:
            assert record["cell"] in ids, record["type"]
    (run,) = [r for r in records if r["type"] == "run"]
    assert ids <= set(run["options"]["planned_cells"])


def test_the_shards_share_one_plan_hash_and_another_plan_has_another():
    runs = [load_records(RESULTS / "shards" / f"shard{i}", "run")[0]["options"] for i in (0, 1)]
    assert runs[0]["plan_hash"] == runs[1]["plan_hash"] and runs[0]["shard"] != runs[1]["shard"]
    assert planid.plan_hash(runs[0]) == planid.plan_hash(runs[1])  # the shard and machine are not the plan
    assert planid.plan_hash({**runs[0], "requests": 2}) != planid.plan_hash(runs[0])
    listed = (RESULTS / "shards" / PLAN).read_text()
    assert runs[0]["plan_hash"] in listed  # --list-cells printed the hash the shards then ran under


def test_a_results_file_of_another_schema_is_refused_in_one_line(tmp_path):
    target = tmp_path / "future"
    shutil.copytree(GATE / "same2", target)
    text = (target / RESULTS_FILE).read_text().replace('{"schema": 1,', '{"schema": 2,')
    (target / RESULTS_FILE).write_text(text)
    with pytest.raises(UsageError, match=r"has schema \['2'\]; this ttsload reads schema 1"):
        ResultSet.from_folder(target)
    done = cli("gate", "--baseline", str(GATE / "same1"), "--current", str(target))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "schema" in done.stderr


# --- the gate on regressions made from the recording ----------------------------------------------------------

@pytest.mark.parametrize("metric, factor", [("weights_cpu_s", 3.0), ("cold_start_s", 2.5),
                                            ("pss_anon_trimmed_mb", 1.5)])
def test_a_regression_made_from_the_recording_fails_the_default_gate(tmp_path, metric, factor):
    current = changed_copy(GATE / "same1", tmp_path / "current", scaled(metric, factor))
    verdict = tmp_path / "verdict.json"
    done = cli("gate", "--baseline", str(GATE / "same1"), "--current", str(current), "--json", str(verdict))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REGRESSION {CELL}: {metric} median" in done.stdout
    found = json.loads(verdict.read_text())
    assert found["exit_code"] == 1
    assert [c["metric"] for c in found["checks"] if c["verdict"] == "REGRESSION"] == [metric]


def test_an_improvement_made_from_the_recording_passes_and_says_so(tmp_path):
    current = changed_copy(GATE / "same1", tmp_path / "current", scaled("cold_start_s", 0.2))  # -80 % < -75 %
    done = cli("gate", "--baseline", str(GATE / "same1"), "--current", str(current))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "improved" in done.stdout and "REGRESSION" not in done.stdout


def test_a_failed_repetition_is_left_out_not_judged(tmp_path):
    """Two of same2's three repetitions failed: too few left to decide, said as such (exit 2)."""
    seen = []

    def fail_two(row: dict) -> None:
        seen.append(row)
        if len(seen) <= 2:
            row.update(status="failed", reason="planted for the test")

    current = changed_copy(GATE / "same2", tmp_path / "current", fail_two)
    done = cli("gate", "--baseline", str(GATE / "same1"), "--current", str(current))
    assert done.returncode == ExitCode.UNDECIDED, done.stdout + done.stderr
    assert "insufficient repetitions" in done.stdout and "REGRESSION" not in done.stdout


# --- the unit tier's guard ------------------------------------------------------------------------------------

def test_the_guard_knows_a_ttsload_child_from_other_commands():
    assert _starts_ttsload([sys.executable, "-P", "-m", "ttsload", "run"])
    assert _starts_ttsload([sys.executable, "-P", "-m", "ttsload.bench.cell", "6", "5"])
    assert _starts_ttsload(f"{sys.executable} -m ttsload.bench.serving.loadgen")
    assert not _starts_ttsload(["git", "rev-parse", "HEAD"])
    assert not _starts_ttsload([sys.executable, "-m", "pip", "--version"])
    assert not _starts_ttsload([sys.executable, "-c", "print('-m ttsload')"])


@pytest.mark.skipif(not UNIT_TIER, reason="the guard is on only in the unit tier (TTSLOAD_UNIT_TIER=1)")
def test_in_the_unit_tier_a_build_or_a_ttsload_child_fails_the_test_at_once(tmp_path):
    from ttsload.bench import models

    with pytest.raises(pytest.fail.Exception, match="unit tier: this test builds a model .*; mark it integration"):
        models.build("vits-tiny")
    with pytest.raises(pytest.fail.Exception, match="unit tier: this test starts a ttsload child"):
        subprocess.run([sys.executable, "-P", "-m", "ttsload", "--version"], capture_output=True)
    with pytest.raises(pytest.fail.Exception, match="unit tier: this test"):  # `run` builds, then starts cells
        cli("run", "--strategy", "mmap", "--model", "vits-tiny", "--out", str(tmp_path / "out"), "--no-history")
    assert subprocess.run(["true"]).returncode == 0  # other commands still run
