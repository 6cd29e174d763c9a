"""Shards, merge and reports across machines: a plan is partitioned exactly, shards run and merged give the
plan back, merge refuses what it must, and a report over two machine classes compares them side by side."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests import synthetic
from tests.conftest import cli, ttsload
from tests.recordings import PARAMS, PLAN, SHARDED_RUN, made
from ttsload.bench import merging, planid, sharding
from ttsload.bench.cells import CellKey
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode

RUN = list(SHARDED_RUN)


def keys(strategies: int, models: int, repeat: int) -> list[CellKey]:
    return [CellKey(f"s{s}", f"m{m}", "single", r) for r in range(repeat) for m in range(models)
            for s in range(strategies)]


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.integers(1, 40), st.sampled_from(sharding.GROUPINGS),
       st.dictionaries(st.integers(0, 59), st.floats(0.1, 100.0), max_size=20))
@example(1, 2, 3, 2, "config", {0: 1.503, 2: 21.0})  # unit weights once summed in plan order: reversal changed ties
def test_shards_partition_the_plan_exactly(strategies, models, repeat, count, grouping, known):
    plan = keys(strategies, models, repeat)
    durations = {plan[i].id: seconds for i, seconds in known.items() if i < len(plan)}
    shard_of = sharding.assign(plan, count, durations, grouping)
    assert set(shard_of) == {k.id for k in plan}  # every cell in exactly one shard (a dict: no cell twice)
    assert all(0 <= shard < count for shard in shard_of.values())
    if grouping == "config":  # the repetitions of one configuration stay together
        assert all(len({shard_of[k.id] for k in plan if k.group == g}) == 1 for g in {k.group for k in plan})
    assert shard_of == sharding.assign(list(reversed(plan)), count, durations, grouping)  # deterministic


def test_balanced_by_duration_where_known_and_by_count_otherwise():
    plan = keys(4, 1, 1)
    by_count = sharding.assign(plan, 2, {}, "cell")
    assert sorted(list(by_count.values()).count(i) for i in (0, 1)) == [2, 2]
    long = {plan[0].id: 30.0, plan[1].id: 10.0, plan[2].id: 10.0, plan[3].id: 10.0}
    by_time = sharding.assign(plan, 2, long, "cell")
    assert [c for c, s in by_time.items() if s == by_time[plan[0].id]] == [plan[0].id]  # 30 s alone vs 3 x 10 s


@pytest.mark.parametrize("text, environ, expected", [("0/3", {}, (0, 3)), ("2/3", {}, (2, 3)),
                                                     ("env/4", {"JOB_COMPLETION_INDEX": "3"}, (3, 4))])
def test_shard_numbering_is_zero_based(text, environ, expected):
    shard = sharding.parse(text, environ)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize("text, message", [("3/3", "0-based, 0..2"), ("a/3", "expected I/N"), ("1/0", "0-based"),
                                           ("env/3", "JOB_COMPLETION_INDEX is not set")])
def test_bad_shards_are_one_line_errors(text, message):
    with pytest.raises(UsageError, match=message):
        sharding.parse(text, {})


def test_expected_durations_come_from_the_history(tmp_path):
    history = tmp_path / "history.jsonl"
    metrics = {"cold_start_s": {"median": 4.0}, "audio_s": {"median": 10.0}, "rtf": {"median": 0.5}}
    history.write_text(json.dumps({"date": "2026-01-01", "options": {"requests": 10}, "cells": [
        {"strategy": "s0", "model": "m0", "scenario": "single", "metrics": metrics}]}) + "\n")
    found = sharding.expected_durations(keys(2, 1, 1), history, requests=20)
    assert found == {"s0|m0|single|0": pytest.approx(4.0 + 10.0 * 0.5 * 2)}  # synthesis scaled to 20 requests


def test_a_plans_own_history_lines_never_change_its_shards(tmp_path):
    """Shards run one after another on one machine append to the history between them: the plan's own lines
    are skipped, so shard 1 cuts the plan exactly as shard 0 did (found when a real 3-shard run overlapped)."""
    history = tmp_path / "history.jsonl"
    line = {"date": "2026-01-01", "plan_hash": "abc", "options": {"requests": 1},
            "cells": [{"strategy": "s0", "model": "m0", "scenario": "single", "metrics": {"wall_s": {"median": 9.0}}}]}
    history.write_text(json.dumps(line) + "\n")
    assert sharding.expected_durations(keys(2, 1, 1), history, requests=1, plan="abc") == {}
    assert sharding.expected_durations(keys(2, 1, 1), history, requests=1, plan="other") == {"s0|m0|single|0": 9.0}


def test_plan_hash_covers_the_plan_not_the_shard_machine_or_paths(tmp_path):
    script = tmp_path / "mine.toml"
    script.write_text("kind = 'pool'\n")
    options = {"repeat": 2, "requests": 1, "planned_cells": ["a|b|single|0"], "shard": "0/3", "machine": "x",
               "out": "/r/s0", "models": [{"name": "vits", "sha256": {"f": "1"}, "checkpoint": "/home/a/f"}],
               "scenarios": [{"name": "mine", "path": str(script)}]}
    same = {**options, "shard": "2/3", "machine": "y", "out": "/r/s2",
            "models": [{"name": "vits", "sha256": {"f": "1"}, "checkpoint": "/home/b/f"}]}
    assert planid.plan_hash(options) == planid.plan_hash(same)
    assert planid.plan_hash(options) != planid.plan_hash({**options, "repeat": 3})
    before = planid.plan_hash(options)
    script.write_text("kind = 'pool'\nworkers = 2\n")  # the scenario script's contents are part of the plan
    assert planid.plan_hash(options) != before


def listed(out: str) -> dict[str, int]:
    return {line.split("\t")[2]: int(line.split("\t")[0]) for line in out.splitlines()
            if line and not line.startswith(("#", "shard"))}


def _shards(root: Path) -> tuple[Path, list[Path], dict[str, int]]:
    return root, [root / "shard0", root / "shard1"], listed((root / PLAN).read_text())


@pytest.fixture(scope="module")
def live_shards(request, tmp_path_factory) -> tuple[Path, list[Path], dict[str, int]]:
    """The plan listed, then its 2 shards run one after the other on the tiny model as machine 'box-a'."""
    return _shards(made("shards", request, tmp_path_factory.mktemp("shards") / "root"))


@pytest.fixture(scope="module", params=PARAMS)
def shards(request, tmp_path_factory) -> tuple[Path, list[Path], dict[str, int]]:
    """The shards as recorded (tests/data/results/shards), or made live."""
    if request.param == "live":
        return request.getfixturevalue("live_shards")
    return _shards(made("shards", request, tmp_path_factory.mktemp("shards") / "root"))


def cell_rows(folder: Path) -> list[dict]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "cell"]


def test_list_cells_runs_nothing_and_keeps_repetitions_together(shards):
    root, folders, plan = shards
    assert len(plan) == 4 and set(plan.values()) == {0, 1}
    assert plan["naive|vits-tiny|single|0"] == plan["naive|vits-tiny|single|1"]
    for index, folder in enumerate(folders):  # each shard ran exactly the cells the listing gave it
        assert sorted(CellKey.of_row(r).id for r in cell_rows(folder)) == sorted(c for c, s in plan.items()
                                                                                 if s == index)


def test_shards_merged_give_the_plan_and_merge_is_idempotent(shards):
    root, folders, plan = shards
    merged = merging.merge(folders, root / "merged")
    rows = cell_rows(root / "merged")
    assert sorted(CellKey.of_row(r).id for r in rows) == sorted(plan) and merged.missing == {}
    assert all(r["machine"] == "box-a" and len(r["machine_class"]) == 12 for r in rows)
    first = (root / "merged" / "results.jsonl").read_text()
    merging.merge([*reversed(folders), root / "merged"], root / "again")  # other order, and merged again
    assert (root / "again" / "results.jsonl").read_text() == first


@pytest.mark.integration
def test_a_merged_folder_reports_gates_and_resumes(live_shards, tmp_path):
    root, folders, plan = live_shards
    merging.merge(folders[:1], tmp_path / "half")
    done = ttsload("report", str(tmp_path / "half"))
    assert done.returncode == 0 and "partial: 2 of 4" in (tmp_path / "half" / "report" / "report.html").read_text()
    resumed = ttsload(*RUN, "--machine", "box-a", "--resume", str(tmp_path / "half"))
    assert resumed.returncode == 0 and "(resumed: 2 of 4 finished before)" in resumed.stderr
    assert sorted(CellKey.of_row(r).id for r in cell_rows(tmp_path / "half")) == sorted(plan)
    gate = ttsload("gate", "--baseline", str(folders[0]), "--current", str(tmp_path / "half"))
    assert gate.returncode in (ExitCode.OK, ExitCode.UNDECIDED), gate.stderr  # 2 cells x 2 repetitions: "insufficient"
    assert "naive/vits-tiny/single" in gate.stdout


def test_merge_refuses_another_plan_and_duplicates_and_names_missing_cells(shards, tmp_path):
    root, folders, plan = shards
    other = tmp_path / "other"  # shard 1 as if run with another plan (the hash itself: test_plan_hash_...)
    shutil.copytree(folders[1], other)
    record = json.loads((other / "results.jsonl").read_text().splitlines()[0])
    (other / "results.jsonl").write_text((other / "results.jsonl").read_text().replace(
        record["options"]["plan_hash"], "0123456789abcdef"))
    with pytest.raises(UsageError, match="different plans"):
        merging.merge([folders[0], other], tmp_path / "x")
    again = tmp_path / "again"
    shutil.copytree(folders[0], again)  # the same shard measured a second time: new records, same cells
    text = (again / "results.jsonl").read_text().replace('"run_id": "', '"run_id": "2-')
    (again / "results.jsonl").write_text(text + '{"schema": 1, "type": "ce')  # and a torn last line
    with pytest.raises(UsageError, match=r"duplicate: cell .*vits-tiny\|single\|. measured ok 2 times"):
        merging.merge([folders[0], again], tmp_path / "y")
    half = merging.merge([again], tmp_path / "z")
    assert sorted(next(iter(half.missing.values()))) == sorted(c for c, s in plan.items() if s == 1)
    assert "missing: " in merging.describe(half)


def test_a_report_over_two_machine_classes_compares_them_side_by_side(shards, tmp_path):
    """The second machine class is faked: the shards' records relabelled as from another machine, with the
    cold starts turned around (100 s - t) so the ranking of strategies flips there."""
    root, folders, _ = shards
    merging.merge(folders, tmp_path / "a")
    other = tmp_path / "box-b"
    other.mkdir()
    lines = []
    for record in map(json.loads, (tmp_path / "a" / "results.jsonl").read_text().splitlines()):
        record["run_id"] = record["run_id"] + "-b"
        if record["type"] == "run":
            record["environment"].update(machine="box-b", machine_class="bbbbbbbbbbbb")
        if record["type"] == "cell":
            record.update(machine="box-b", machine_class="bbbbbbbbbbbb")
            record["cold_start_s"] = 100 - record["cold_start_s"]  # the cold-start order is reversed
        lines.append(json.dumps(record))
    (other / "results.jsonl").write_text("\n".join(lines) + "\n")
    both = merging.merge([tmp_path / "a", other], tmp_path / "both")
    assert len(both.classes) == 2 and both.missing == {}
    done = cli("report", str(tmp_path / "both"))
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "both" / "report" / "report.html").read_text()
    assert "Across machine classes" in page and "cold start (s) A" in page and "cold start (s) B" in page
    assert "machine classes (by fingerprint)" in page and "B = bbbbbbbbbbbb (box-b" in page
    assert "the ranking differs between machine classes" in page and "bbbbbbbbbbbb: memory:" in page
    gate = cli("gate", "--baseline", str(tmp_path / "both"), "--current", str(tmp_path / "a"))
    assert gate.returncode == 2 and "2 machine classes" in gate.stderr


@pytest.mark.integration  # at scale (10^4 cells through merge and report): minutes on a busy 2-core host
def test_merge_and_report_scale_to_a_large_synthetic_set(tmp_path):
    """A scale check, not a benchmark: 5,000 cells in 4 shards x 2 machine classes, merged and reported well
    inside a generous bound (a few seconds when the machine is free; the 10^5-cell command is in docs/machines.md)."""
    from ttsload.reports.build import build_report

    folders = synthetic.write(tmp_path / "set", 5_000, 4, 2, samples=1)
    start = time.monotonic()
    merged = merging.merge(folders, tmp_path / "merged")
    report = build_report(tmp_path / "merged")
    elapsed = time.monotonic() - start
    assert merged.cells == len(synthetic.plan(5_000, 2)) * 2 and merged.missing == {}
    assert "Across machine classes" in report.read_text()
    assert elapsed < 300, f"merge + report of {merged.cells} cells took {elapsed:.0f} s"


def test_a_ranking_flip_is_called_real_only_when_intervals_are_apart_in_both_classes():
    """Medians that swap places inside each other's intervals are noise, not a verdict that depends on hardware."""
    import pandas as pd

    from ttsload.reports.machines import ranking_differences

    def long(b_in_class_b: tuple[float, float, float]) -> pd.DataFrame:
        rows = [("A", "fast", 1.0, 0.9, 1.1), ("A", "slow", 2.0, 1.9, 2.1), ("B", "fast", 2.0, 1.9, 2.1),
                ("B", "slow", *b_in_class_b)]
        return pd.DataFrame([{"model": "m", "scenario": "single", "metric": "cold_start_s", "machine_class": c,
                              "strategy": s, "median": med, "low": low, "high": high, "n": 5}
                             for c, s, med, low, high in rows])

    (flip,) = ranking_differences(long((1.0, 0.9, 1.1)), {"A": "A", "B": "B"})
    assert "A: fast < slow; B: slow < fast" in flip and "reversed with intervals apart: fast vs slow" in flip
    (noise,) = ranking_differences(long((1.95, 1.5, 2.5)), {"A": "A", "B": "B"})
    assert "B: slow < fast" in noise and "within the noise" in noise
